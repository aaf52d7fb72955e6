import pytest
import torch
import yaml

from spidepth_core.checkpoint import load_model, read_checkpoint, save_model
from spidepth_core.config import TrainConfig, load_config, parse_override
from spidepth_core.models import create_model


def test_checkpoint_roundtrip_rebuilds_same_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("spidepth_tiny", max_depth=40.0).eval()
    path = tmp_path / "m.pt"
    save_model(path, model, "spidepth_tiny")
    ckpt = read_checkpoint(path)
    assert ckpt["input_size"] == [64, 192] and ckpt["depth_range"] == [1e-3, 40.0]
    assert ckpt["model_name"] == "spidepth_tiny"
    x = torch.rand(1, 3, 64, 192)
    with torch.no_grad():
        assert torch.equal(model(x), load_model(path)(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp files left


def test_failed_save_keeps_the_old_file(tmp_path):
    model = create_model("spidepth_tiny")
    path = tmp_path / "m.pt"
    save_model(path, model)
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_model(path, model, extra=lambda: None)  # not picklable
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a spidepth checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    good = tmp_path / "good.pt"
    save_model(good, create_model("spidepth_tiny"), "spidepth_tiny")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"cannot read checkpoint .*cut\.pt: \S"):  # a reason after the colon
        read_checkpoint(tmp_path / "cut.pt")
    ckpt = torch.load(good, weights_only=True)
    ckpt["config"]["num_bins"] = 32
    torch.save(ckpt, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match=r"does not match its weights: .*wrong shape") as err:
        load_model(tmp_path / "foreign.pt")
    assert len(str(err.value)) < 300


def test_config_layers(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"train": {"lr": "1e-4", "epochs": 3}, "pose": {"kind": "standard"}}))
    cfg = load_config(f, ["train.epochs=5", "train.clip_grad=0.1", "model.overrides={max_depth: 50}"])
    assert cfg.train.lr == 1e-4 and isinstance(cfg.train.lr, float)
    assert cfg.train.epochs == 5 and cfg.train.clip_grad == 0.1
    assert cfg.pose.kind == "standard" and cfg.model.overrides == {"max_depth": 50}
    assert cfg.train.batch_size == TrainConfig().train.batch_size
    out = tmp_path / "saved.yaml"
    cfg.save(out)
    assert load_config(out).to_dict() == cfg.to_dict()


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(None, ["train.lrr=1"])
    with pytest.raises(ValueError, match="section.key=value"):
        parse_override("train.lr")
    with pytest.raises(ValueError, match="cannot use"):
        load_config(None, ["train.epochs=many"])
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "none.yaml")


def test_compact_fp16_checkpoint_halves_the_file_and_still_fine_tunes(world_dir, tmp_path, capsys):
    from conftest import tiny_overrides
    from spidepth_core.cli import main
    from spidepth_core.trainer import Trainer
    run = tmp_path / "run"
    assert main(["train", *tiny_overrides(world_dir, run, **{"train.max_steps": 2})]) == 0
    full = run / "last.pt"
    assert main(["compact", str(full), str(tmp_path / "small.pt"), "--fp16"]) == 0
    assert "wrote" in capsys.readouterr().out
    small = read_checkpoint(tmp_path / "small.pt")
    assert "optimizer" not in small and "rng" not in small and small["stored_dtype"] == "float16"
    weights = sum(v.numel() * 4 for v in small["state_dict"].values()) + \
        sum(v.numel() * 4 for v in small["pose_state_dict"].values())
    assert (tmp_path / "small.pt").stat().st_size < 0.6 * weights  # fp32 weights alone would be `weights`
    x = torch.rand(1, 3, 64, 192)
    with torch.no_grad():
        a, b = load_model(full)(x), load_model(tmp_path / "small.pt")(x)
    assert b.dtype == torch.float32 and torch.allclose(a, b, rtol=2e-2)
    cfg = load_config(None, tiny_overrides(world_dir, tmp_path / "ft"))
    cfg.model.init = str(tmp_path / "small.pt")
    trainer = Trainer(cfg, resume=False)  # both nets come from the fp16 file, in float32
    pose = read_checkpoint(full)["pose_state_dict"]
    for k, v in trainer.pose_net.state_dict().items():
        assert v.dtype == pose[k].dtype and torch.allclose(v.float(), pose[k].float(), rtol=1e-2, atol=1e-4)


def test_values_follow_the_declared_types():
    cfg = load_config(None, ["data.path=2024", "data.image_topic=on", "model.pretrained=false",
                             "pose.pretrained=/weights/r18.pth", "train.clip_grad=null", "train.amp=off",
                             "model.overrides.max_depth=50", "model.overrides.channels=16"])
    assert cfg.data.path == "2024" and cfg.data.image_topic == "on"  # strings stay strings
    assert cfg.model.pretrained is False and cfg.pose.pretrained == "/weights/r18.pth"
    assert cfg.train.clip_grad is None and cfg.train.amp is False
    assert cfg.model.overrides == {"max_depth": 50, "channels": 16}  # repeated keys add up
    for override, message in [("train.epochs=2.7", "train.epochs: cannot use 2.7; it must be a whole number"),
                              ("data.source=foldr", "data.source: cannot use 'foldr'; it must be one of folder"),
                              ("pose.kind=strong", "pose.kind: cannot use 'strong'; it must be one of strengthened"),
                              ("train.amp=maybe", "train.amp: cannot use 'maybe'; it must be true or false")]:
        with pytest.raises(ValueError, match=message):
            load_config(None, [override])


def test_yaml_values_are_checked_too(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  image_topic: on\n")  # YAML reads an unquoted on as true
    with pytest.raises(ValueError, match="data.image_topic: cannot use True; it must be a string"):
        load_config(f)
    f.write_text("data:\n  source: foldr\n")
    with pytest.raises(ValueError, match="data.source"):
        load_config(f)


def test_the_shipped_onnx_is_the_bundled_checkpoints_export():
    """The runtime's default model: exported from exactly the bundled checkpoint (a retrained .pt without a
    new export fails here), with the same depth."""
    import numpy as np

    from spidepth_core.files import file_sha256
    from spidepth_core.inference import Predictor
    from spidepth_core.inference.resolver import exported_from
    from spidepth_core.shipped import default_model_path
    onnx = default_model_path().with_suffix(".onnx")
    assert exported_from(onnx) == file_sha256(default_model_path())
    rgb = np.random.default_rng(0).integers(0, 255, (96, 320, 3), dtype=np.uint8)
    a = Predictor(onnx, "onnxruntime").predict(rgb).depth
    b = Predictor(default_model_path(), "torch").predict(rgb).depth
    assert np.allclose(a, b, rtol=1e-4)
