"""Converting the authors' weight folders: key layout, config detection, same depth as their network."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from spidepth_core.checkpoint import load_model, read_checkpoint
from spidepth_core.cli import main
from spidepth_core.convert import DEPTH_HEAD_KEYS, UNET_KEYS, convert
from spidepth_core.models import create_model, create_pose_net


def _to_authors(state, table):
    out = {}
    for key, value in state.items():
        for theirs, ours in table:
            if key.startswith(ours):
                out[theirs + key[len(ours):]] = value
                break
    return out


@pytest.fixture()
def authors_folder(tmp_path):
    torch.manual_seed(3)
    model = create_model("spidepth_tiny")
    for p in model.parameters():  # not the default init: make the check meaningful
        p.data.normal_(0, 0.05)
    state = model.state_dict()
    enc = _to_authors({k: v for k, v in state.items() if k.startswith("unet.")}, UNET_KEYS)
    enc.update(height=64, width=192, use_stereo=True)
    folder = tmp_path / "weights_19"
    folder.mkdir()
    torch.save(enc, folder / "encoder.pth")
    torch.save(_to_authors({k: v for k, v in state.items() if k.startswith("head.")}, DEPTH_HEAD_KEYS),
               folder / "depth.pth")
    torch.save(create_pose_net("strengthened").state_dict(), folder / "pose.pth")
    return folder, model


def _reference_depth(unet, head_sd, image, Q=8, min_d=1e-3, max_d=80.0):
    """The authors' head, rebuilt independently from their published layout, with their key names and a
    sequence-first transformer."""
    s = unet(image)
    E = head_sd["positional_encodings"].shape[1]
    emb = F.conv2d(s, head_sd["embedding_convPxP.weight"], head_sd["embedding_convPxP.bias"],
                   stride=head_sd["embedding_convPxP.weight"].shape[-1]).flatten(2)
    emb = emb + head_sd["positional_encodings"][: emb.shape[2]].T[None]
    layer = nn.TransformerEncoderLayer(E, 4, head_sd["transformer_encoder.layers.0.linear1.weight"].shape[0])
    enc = nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
    enc.load_state_dict({k[len("transformer_encoder."):]: v for k, v in head_sd.items()
                         if k.startswith("transformer_encoder.")})
    enc.eval()
    tokens = enc(emb.permute(2, 0, 1))                      # [N, B, E]
    queries = tokens[:Q].permute(1, 0, 2)                    # [B, Q, E]
    x = F.conv2d(s, head_sd["conv3x3.weight"], head_sd["conv3x3.bias"], padding=1)
    n, c, h, w = x.shape
    energy = torch.matmul(x.view(n, c, h * w).permute(0, 2, 1), queries.permute(0, 2, 1))   # [B, hw, Q]
    summary = torch.matmul(torch.softmax(energy, dim=1).permute(0, 2, 1), x.view(n, c, h * w).permute(0, 2, 1))
    y = summary.reshape(n, -1)
    for i in (0, 2, 4):
        y = F.linear(y, head_sd[f"bins_regressor.{i}.weight"], head_sd[f"bins_regressor.{i}.bias"])
        if i < 4:
            y = F.leaky_relu(y)
    y = torch.relu(y) + 0.1
    y = y / y.sum(1, keepdim=True)
    edges = torch.cumsum(F.pad((max_d - min_d) * y, (1, 0), value=min_d), 1)
    centers = 0.5 * (edges[:, :-1] + edges[:, 1:])
    prob = torch.softmax(F.conv2d(energy.permute(0, 2, 1).reshape(n, Q, h, w), head_sd["convert_to_prob.0.weight"]
                                  [..., None, None] if head_sd["convert_to_prob.0.weight"].dim() == 2 else
                                  head_sd["convert_to_prob.0.weight"], head_sd["convert_to_prob.0.bias"]), 1)
    return (prob * centers[..., None, None]).sum(1, keepdim=True)


def test_converted_model_matches_the_authors_network(authors_folder, tmp_path):
    folder, original = authors_folder
    out = convert(folder, tmp_path / "converted.pt")
    ckpt = read_checkpoint(out)
    assert ckpt["model_name"] == "spidepth_tiny" and ckpt["input_size"] == [64, 192]
    assert ckpt["pose_kind"] == "strengthened" and "pose_state_dict" in ckpt
    converted = load_model(out)
    image = torch.rand(2, 3, 64, 192)
    head_sd = torch.load(folder / "depth.pth")
    original.eval()
    with torch.no_grad():
        ref = _reference_depth(original.unet, head_sd, image)
        ours = converted.forward_low_res(image)
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-4), (ours - ref).abs().max()


def test_mismatch_names_the_key_and_shape(authors_folder, tmp_path, capsys):
    folder, _ = authors_folder
    depth = torch.load(folder / "depth.pth")
    depth["conv3x3.weight"] = torch.zeros(16, 16, 5, 5)
    torch.save(depth, folder / "depth.pth")
    with pytest.raises(ValueError, match=r"head.key_conv.weight: weights have \(16, 16, 5, 5\)"):
        convert(folder, tmp_path / "x.pt", model="spidepth_tiny")
    assert main(["convert-checkpoint", str(folder), str(tmp_path / "y.pt")]) == 2
    assert "weights do not fit" in capsys.readouterr().err


def test_missing_files_and_foreign_keys(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.pth"):
        convert(tmp_path, tmp_path / "x.pt")
    torch.save({"something.weight": torch.zeros(1)}, tmp_path / "encoder.pth")
    torch.save({}, tmp_path / "depth.pth")
    with pytest.raises(ValueError, match="unexpected key 'something.weight'"):
        convert(tmp_path, tmp_path / "x.pt")
