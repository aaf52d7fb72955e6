"""The ``spidepth`` command: train, predict, export, evaluate, benchmark, ..."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .errors import TRAINING_INSTALL, TRAINING_MODULES, first_line
from .inference.resolver import BACKENDS
from .metrics import EVAL_MAX_DEPTH
from .scale import POLICIES

log = logging.getLogger("spidepth")


def _count(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


JSON_HELP = ("also give the figures as JSON: written to PATH, or with no PATH to stdout (the other output then "
             "goes to stderr)")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", nargs="?", const="-", metavar="PATH", help=JSON_HELP)


def _write_json(where: str, data: Any) -> None:
    import json
    text = json.dumps(data, indent=2, default=str)
    if where == "-":
        print(text)
    else:
        Path(where).write_text(text + "\n")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="self-supervised training (or fine-tuning) from a YAML config")
    p.add_argument("config", nargs="?", help="YAML config (see config/train_*.yaml)")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.lr=1e-4")
    p.add_argument("--restart", action="store_true", help="ignore an existing last.pt in run.out_dir")
    p.add_argument("--bag", help="train on rosbag2 recording(s): a bag folder or a folder of bags")
    p.add_argument("--image-topic", help="with --bag: Image or CompressedImage topic")
    p.add_argument("--camera-info-topic", help="with --bag: CameraInfo topic (or give data.intrinsics=YAML)")
    p.add_argument("--init", help="fine-tune from this checkpoint (e.g. the bundled model)")
    p.add_argument("--supervised", action="store_true", help="metric fine-tuning on GT depth (SILog)")
    p.set_defaults(func=cmd_train)


def _add_deploy(sub) -> None:
    p = sub.add_parser("deploy", help="best checkpoint of a run -> ONNX (+ TensorRT engine where possible)")
    p.add_argument("run_dir", help="a training run's folder (its best.pt, else last.pt, is deployed)")
    p.add_argument("--fp16", action="store_true", help="fp16 weights and compute in the ONNX graph")
    _add_json(p)
    p.set_defaults(func=cmd_deploy)


def cmd_deploy(args) -> int:
    from .tools.deploy import deploy
    args.report = deploy(Path(args.run_dir), args.fp16)
    return 0


def _add_diagnose(sub) -> None:
    p = sub.add_parser("diagnose", help="what a run's pose and depth nets do on its frames; signs of a stuck run")
    p.add_argument("run", help="a training run's folder (its last.pt is taken) or a checkpoint in one")
    p.add_argument("overrides", nargs="*", help="section.key=value on the run's config, e.g. data.val_path=DIR")
    p.add_argument("--samples", type=_count, default=16, help="frame triplets, spread over the validation data")
    _add_json(p)
    p.set_defaults(func=cmd_diagnose)


def cmd_diagnose(args) -> int:
    from .tools.diagnose import diagnose, format_report
    report = diagnose(Path(args.run), args.samples, list(args.overrides))
    print(format_report(report))
    args.report = report
    return 0


def _add_evidence(sub) -> None:
    p = sub.add_parser("evidence", help="on sequences with true depth and poses: how much the frames' photometric "
                                        "error says about a model's depth errors")
    p.add_argument("--model", help="a checkpoint with a pose net: a run's last.pt or best.pt (default: the "
                                   "bundled model)")
    p.add_argument("--data", required=True, help="a folder of sequences with depth/ and poses.txt "
                                                 "(as spidepth synth writes)")
    p.add_argument("--samples", type=_count, default=60, help="frame triplets, spread over the sequences")
    p.add_argument("--resolving-power", action="store_true",
                   help="no model: how often the frames, at their own size, tell the true depth from it scaled by "
                        "0.9, 1.1 and 1.5")
    _add_json(p)
    p.set_defaults(func=cmd_evidence)


def cmd_evidence(args) -> int:
    from .shipped import model_file
    from .tools.evidence import evidence, format_report, format_resolving_power, resolving_power
    if args.resolving_power:
        if args.model:
            raise ValueError("--resolving-power uses no model: drop --model")
        report = resolving_power(Path(args.data), args.samples)
        print(format_resolving_power(report))
    else:
        report = evidence(model_file(args.model), Path(args.data), args.samples)
        print(format_report(report))
    args.report = report
    return 0


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="depth for an image or a folder of images")
    p.add_argument("input", help="image file or folder")
    p.add_argument("--model", help="checkpoint / ONNX / engine (default: the bundled model)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="auto: TensorRT, then ONNX Runtime, then PyTorch, as the model and machine allow")
    p.add_argument("--output", default="depth_out", help="output folder (default: depth_out)")
    p.add_argument("--scale-policy", default="none", choices=POLICIES,
                   help="as the node's: none, fixed (x --depth-scale), camera_height (ground fit)")
    p.add_argument("--depth-scale", type=float, default=1.0, help="multiplier, for --scale-policy fixed")
    p.add_argument("--camera-height", type=float, default=1.5, help="metres, for --scale-policy camera_height")
    p.add_argument("--camera-pitch", type=float, default=0.0,
                   help="degrees the camera looks down (+) or up (-) from level, for --scale-policy camera_height")
    p.add_argument("--intrinsics", help="camera YAML (fx, fy, cx, cy, width, height) for the ground fit")
    p.add_argument("--min-depth", type=float, default=0.0, help="depths below (after scaling) -> invalid")
    p.add_argument("--max-depth", type=float, default=float("inf"), help="depths above (after scaling) -> invalid")
    p.add_argument("--uncertainty", action="store_true", help="also write <name>_uncertainty.npy (metres)")
    p.add_argument("--max-pixels", type=_count,
                   help="larger images are skipped, from their header before decoding (default 12582912, 4096x3072)")
    _add_json(p)
    p.set_defaults(func=cmd_predict)


def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="render synthetic street sequences (images, GT depth, poses)")
    p.add_argument("output", help="output folder (one seq_NNNN folder per sequence)")
    p.add_argument("--sequences", type=_count, default=4, help="drives to render, one folder each")
    p.add_argument("--frames", type=_count, default=100, help="frames per drive")
    p.add_argument("--size", default="96x320", help="HxW (the bundled model's input size)")
    p.add_argument("--seed", type=int, default=0, help="first sequence seed")
    p.add_argument("--stops", action="store_true", help="include a stretch where the camera halts")
    p.add_argument("--stereo", action="store_true", help="also render the right camera (0.54 m baseline)")
    p.add_argument("--camera-height", type=float, help="camera metres above the ground (default: a car's, 1.5-1.8)")
    p.add_argument("--bag", choices=["sqlite3", "mcap"], help="also write each sequence as a rosbag2 (a practice "
                   "recording: /camera/image_raw and /camera/camera_info)")
    p.add_argument("--bag-depth", choices=["32FC1", "16UC1"],
                   help="with --bag: also record the true depth on /camera/depth/image in this encoding (32FC1 "
                        "metres, or 16UC1 millimetres as RGB-D cameras send it), for evaluate --depth-topic")
    p.add_argument("--variety", action="store_true",
                   help="a camera drawn per sequence (40-110 deg, 4:3 to KITTI-wide, 0.3-2.5 m up, tilted), more "
                        "kinds of objects, walls of five families, other road surfaces, coloured light and a "
                        "sensor look (white balance, noise, blur, JPEG)")
    p.add_argument("--kitti-camera", action="store_true",
                   help="with --variety: KITTI's normalised camera on every drive (the world and the look still "
                        "vary, the camera does not)")
    p.add_argument("--street-road", action="store_true",
                   help="with --variety: the street world's road under the varied walls (its texture's size is a "
                        "cue to the camera's height)")
    p.add_argument("--style", choices=["street", "unseen"], default="street",
                   help="unseen: textures and layouts no training data has (for benchmarks)")
    p.add_argument("--workers", type=int, default=2, help="render processes (0 or 1: in this process)")
    p.set_defaults(func=cmd_synth)


def _add_benchmark(sub) -> None:
    p = sub.add_parser("benchmark", help="accuracy, fine-tuning, cameras, training speed or latency benchmarks")
    bsub = p.add_subparsers(dest="kind", required=True, metavar="KIND",
                            help="accuracy, finetune, cameras, training or latency (each has its own --help)")
    a = bsub.add_parser("accuracy", help="train on synthetic sequences, evaluate on held-out ones")
    a.add_argument("--config", help="training YAML (default: built-in defaults)")
    a.add_argument("--output", default="runs/accuracy", help="folder for the world, the runs and accuracy.json")
    a.add_argument("--poses", default="pretrained,strengthened,standard",
                   help="pose arms: pretrained (strengthened, ImageNet backbone), strengthened (random), standard")
    a.add_argument("--seeds", default="0,1,2", help="training seeds per pose arm, comma-separated")
    a.add_argument("--steps", type=_count, default=300, help="optimiser steps per run")
    a.add_argument("--train-sequences", type=_count, default=8, help="drives to train on")
    a.add_argument("--val-sequences", type=_count, default=3, help="held-out drives to score on")
    a.add_argument("--frames", type=_count, default=60, help="frames per drive")
    a.add_argument("--size", default="96x320", help="HxW of the rendered frames")
    a.add_argument("--stereo", action="store_true", help="add the rendered stereo partner (as the bundled model)")
    a.add_argument("overrides", nargs="*", help="config overrides, section.key=value")
    _add_json(a)
    a.set_defaults(func=cmd_benchmark_accuracy)
    f = bsub.add_parser("finetune", help="fine-tune a model on unseen synthetic bags at several learning rates")
    f.add_argument("--model", help="checkpoint to fine-tune (default: the bundled model)")
    f.add_argument("--config", default="config/finetune_bag.yaml", help="fine-tuning YAML (the shipped one)")
    f.add_argument("--lr-factors", default="0.5,1,2", help="multiples of the config's train.lr")
    f.add_argument("--bags", type=_count, default=4, help="recordings to fine-tune on")
    f.add_argument("--held-out", type=_count, default=2, help="other sequences to evaluate on")
    f.add_argument("--frames", type=_count, default=75, help="frames per sequence")
    f.add_argument("--size", help="HxW (default: the model's input size)")
    f.add_argument("--camera-height", type=float,
                   help="render the recordings from a camera this many metres above the ground (a robot's) "
                        "instead of a car's 1.5-1.8 m")
    f.add_argument("--output", default="runs/finetune_bench", help="folder for the recordings, runs and reports")
    f.add_argument("overrides", nargs="*", help="config overrides, section.key=value")
    _add_json(f)
    f.set_defaults(func=cmd_benchmark_finetune)
    cams = bsub.add_parser("cameras", help="depth on cameras (field of view, aspect, height) and in a world that "
                                          "training never saw: median-scaled, no scaling, camera_height policy")
    cams.add_argument("--model", help="checkpoint / ONNX / engine (default: the bundled model)")
    cams.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="auto: TensorRT, then ONNX Runtime, then PyTorch, as the model and machine allow")
    cams.add_argument("--sequences", type=_count, default=2, help="drives per camera (default 2)")
    cams.add_argument("--frames", type=_count, default=40, help="frames per drive (default 40)")
    cams.add_argument("--native-aspect", action="store_true",
                      help="run a checkpoint (--backend torch) at an input size of each camera's aspect instead of "
                           "squashing every image to the model's size (measures keeping the aspect)")
    cams.add_argument("--by-surface", action="store_true",
                      help="also the median-scaled error per surface (walls, vehicles, ground, ...): where it sits")
    cams.add_argument("--seed", type=int, default=90_000,
                      help="first drive seed: another gives another unseen world, e.g. to choose between models "
                           "without choosing on the benchmark's own drives")
    cams.add_argument("--output", default="runs/cameras_bench", help="where the rendered world is kept")
    cams.add_argument("--workers", type=int, default=2, help="render processes")
    _add_json(cams)
    cams.set_defaults(func=cmd_benchmark_cameras)
    tr = bsub.add_parser("training", help="training images per second per speed lever, and where a step's time "
                                          "goes (data, depth and pose nets, warping, photometric, optimiser)")
    tr.add_argument("--config", default="config/train_synthetic_lite0.yaml", help="training YAML")
    tr.add_argument("--data", help="a folder of sequences (default: a small world rendered at the config's size)")
    tr.add_argument("--arms", default="baseline,bf16,channels_last,pose_half,main_process_data,all,config",
                    help="comma-separated: baseline (every lever off), bf16, channels_last, pose_half (the pose net "
                         "at half size), main_process_data (no data workers, decoded frames cached), all, "
                         "all_but_pose_half, config (the config as it is)")
    tr.add_argument("--steps", type=_count, default=20, help="timed steps per arm")
    tr.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    tr.add_argument("--threads", type=int, help="PyTorch intra-op threads (default: PyTorch's)")
    tr.add_argument("--output", default="runs/training_speed", help="folder for the world and the report")
    tr.add_argument("overrides", nargs="*", help="config overrides, section.key=value")
    _add_json(tr)
    tr.set_defaults(func=cmd_benchmark_training)
    lat = bsub.add_parser("latency", help="latency per backend against PyTorch eager, same run")
    lat.add_argument("--model", help="checkpoint (default: the bundled model)")
    lat.add_argument("--backends", default="torch,onnxruntime", help="comma-separated: torch, onnxruntime, tensorrt")
    lat.add_argument("--size", help="HxW input (default: the model's); ONNX is exported at this size")
    lat.add_argument("--runs", type=_count, default=50, help="timed runs per backend")
    lat.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    lat.add_argument("--output", default="runs/latency",
                     help="folder for the model at the benchmark size, its ONNX and latency.json")
    _add_json(lat)
    lat.set_defaults(func=cmd_benchmark_latency)


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="ONNX export (+ onnxruntime parity check), optionally a TensorRT engine")
    p.add_argument("checkpoint", help="a .pt checkpoint, or 'bundled' for the bundled model")
    p.add_argument("--onnx", help="output .onnx (default: beside the checkpoint; the bundled model's in the "
                                  "working folder)")
    p.add_argument("--height", type=int, help="input height in pixels (default: the checkpoint's)")
    p.add_argument("--width", type=int, help="input width in pixels (default: the checkpoint's)")
    p.add_argument("--fp16", action="store_true", help="fp16 weights and compute (fp32 input/output)")
    p.add_argument("--half-weights", action="store_true",
                   help="weights stored in fp16 (half the file), computed in fp32: exact for a checkpoint that "
                        "compact --fp16 made, such as the bundled model")
    p.add_argument("--tolerance", type=float, help="max relative difference allowed (default 1e-3, fp16 2e-2)")
    p.add_argument("--engine", action="store_true", help="also build the cached TensorRT engine (needs a GPU)")
    _add_json(p)
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .export import TENSORRT_OPS, export_onnx, graph_ops
    from .inference.parity import check_parity
    from .shipped import is_bundled, model_file
    checkpoint = model_file(args.checkpoint)
    out = Path(args.onnx) if args.onnx else checkpoint.with_suffix(".onnx")
    if not args.onnx and is_bundled(checkpoint):  # never into the installed package
        out = Path(checkpoint.with_suffix(".onnx").name)
    path = export_onnx(checkpoint, out, args.height, args.width, args.fp16, args.half_weights)
    diff = check_parity(checkpoint, path)
    tol = args.tolerance or (2e-2 if args.fp16 else 1e-3)
    print(f"wrote {path}; onnxruntime vs PyTorch: max abs {diff['max_abs']:.2e} m, max rel {diff['max_rel']:.2e}")
    unknown = graph_ops(path) - TENSORRT_OPS
    if unknown:
        print(f"warning: ops not on the TensorRT-checked list: {sorted(unknown)}")
    if diff["max_rel"] > tol:
        raise RuntimeError(f"parity check failed: max rel {diff['max_rel']:.2e} > tolerance {tol:.0e}")
    args.report = {"onnx": str(Path(path).resolve()), "fp16": args.fp16, "tolerance": tol, **diff,
                   "unchecked_ops": sorted(unknown), "engine": None}
    if args.engine:
        from .inference.tensorrt import engine_for_onnx
        engine = engine_for_onnx(path)
        args.report["engine"] = str(engine)
        print(f"engine: {engine}")
    return 0


def _add_convert(sub) -> None:
    p = sub.add_parser("convert-checkpoint", help="the authors' weights_N folder -> one spidepth checkpoint",
                       description="The SPIdepth authors publish trained weights per dataset (KITTI, Cityscapes); "
                                   "their README links the downloads. Download one weights folder: it holds "
                                   "encoder.pth and depth.pth (and pose.pth, kept for fine-tuning).")
    p.add_argument("weights_dir", help="a folder with encoder.pth, depth.pth and optionally pose.pth")
    p.add_argument("output", help="the checkpoint to write (.pt)")
    p.add_argument("--model", help="registered config to use (default: chosen from the tensor shapes)")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    from .convert import convert
    print(f"wrote {convert(args.weights_dir, args.output, args.model)}")
    return 0


def _add_compact(sub) -> None:
    p = sub.add_parser("compact", help="a checkpoint without train state (optimiser, RNG), optionally fp16")
    p.add_argument("checkpoint", help="a .pt checkpoint (a run's best.pt or last.pt)")
    p.add_argument("output", help="the smaller checkpoint to write (may be the same path)")
    p.add_argument("--fp16", action="store_true", help="store weights in half precision (loads as float32)")
    p.set_defaults(func=cmd_compact)


def cmd_compact(args) -> int:
    from .checkpoint import compact_checkpoint
    size = Path(args.checkpoint).stat().st_size / 2**20  # before: the output may replace the input
    out = compact_checkpoint(args.checkpoint, args.output, args.fp16)
    print(f"wrote {out}: {out.stat().st_size / 2**20:.1f} MB (from {size:.1f} MB)")
    return 0


def _add_export_gt(sub) -> None:
    p = sub.add_parser("export-gt", help="KITTI: velodyne scans of a split -> gt_depths.npz")
    p.add_argument("--data", required=True, help="KITTI raw root")
    p.add_argument("--split", required=True, help="split file (e.g. the Eigen test files)")
    p.add_argument("--output", default="gt_depths.npz", help="the .npz to write")
    p.set_defaults(func=cmd_export_gt)


def cmd_export_gt(args) -> int:
    from .data.kitti import export_gt
    print(f"wrote {export_gt(args.data, args.split, args.output)} depth maps to {args.output}")
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="errors against ground-truth depth (a benchmark protocol or GT folders)")
    p.add_argument("--model", help="checkpoint / ONNX / engine (default: bundled)")
    p.add_argument("--data", help="benchmark root, or a folder of sequences with depth/ GT")
    p.add_argument("--bag", help="a rosbag2 recording (or a folder of them) instead of --data")
    p.add_argument("--image-topic", help="with --bag: Image or CompressedImage topic")
    p.add_argument("--camera-info-topic", help="with --bag: CameraInfo topic")
    p.add_argument("--depth-topic", help="with --bag: depth ground truth (16UC1 mm or 32FC1 m, paired by stamp); "
                   "without it, the self-supervised photometric error is reported (needs a .pt checkpoint)")
    p.add_argument("--protocol", choices=["kitti_eigen", "cityscapes", "make3d"],
                   help="benchmark protocol (default: GT folders)")
    p.add_argument("--split", help="kitti_eigen: the Eigen test split file; cityscapes: test_files.txt (GT order)")
    p.add_argument("--gt", help="kitti_eigen: gt_depths.npz from `spidepth export-gt`")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="auto: TensorRT, then ONNX Runtime, then PyTorch, as the model and machine allow")
    scaling = p.add_mutually_exclusive_group()
    scaling.add_argument("--no-median-scaling", action="store_true", help="default for metric checkpoints")
    scaling.add_argument("--median-scaling", action="store_true", help="default for self-supervised ones")
    p.add_argument("--camera-height", help="GT folders: scale depth as the node's camera_height policy "
                   "with this height in metres, or 'poses' for each sequence's height from its poses.txt "
                   "(median scaling off)")
    p.add_argument("--max-depth", type=float, default=EVAL_MAX_DEPTH,
                   help="GT folders and bags: score pixels with true depth under this (metres)")
    _add_json(p)
    p.add_argument("--uncertainty", metavar="PLOT.png",
                   help="GT folders: also rank pixels by the model's uncertainty; prints AUSE and the rank "
                        "correlation with the error, and draws the sparsification curves here")
    p.add_argument("--by-depth", action="store_true",
                   help="GT folders: also print abs_rel per band of true depth (where the error sits)")
    p.add_argument("--by-row", action="store_true",
                   help="GT folders: also print abs_rel per band of image rows, top to bottom")
    p.set_defaults(func=cmd_evaluate)


def _positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like HxW (e.g. 192x640), got {text!r}") from None
    if h < 16 or w < 16:
        raise ValueError(f"size {text} is too small")
    return h, w


def cmd_synth(args) -> int:
    from .synth import Camera, Scene, generate
    h, w = _size(args.size)
    seeds = list(range(args.seed, args.seed + args.sequences))
    folders = generate(args.output, seeds, args.frames, h, w, args.workers, args.stops, args.stereo,
                       args.camera_height, Scene(Camera() if args.kitti_camera else None, args.variety, args.style,
                                                 args.street_road))
    if args.bag_depth and not args.bag:
        raise ValueError("--bag-depth records depth into the bags: add --bag sqlite3 or --bag mcap")
    if args.bag:
        from .data.bag import write_camera_bag
        from .data.folder import FolderSequence, list_images, read_rgb
        for folder in folders:
            bag = Path(f"{folder}_{args.bag}" + (f"_depth{args.bag_depth}" if args.bag_depth else ""))
            seq = FolderSequence(folder)
            if not bag.exists():
                depths = (_true_depth(seq, i) for i in range(len(seq.files))) if args.bag_depth else None
                write_camera_bag(bag, (read_rgb(p) for p in list_images(folder)), seq.K, storage=args.bag,
                                 depths=depths, depth_encoding=args.bag_depth or "32FC1")
            print(f"bag: {bag}")
    print(f"wrote {len(folders)} sequence(s) to {args.output}")
    return 0


def _true_depth(seq, i: int):
    depth = seq.depth(i)
    if depth is None:
        raise ValueError(f"{seq.files[i]} has no depth/ file to record")
    return depth


def cmd_benchmark_accuracy(args) -> int:
    from .tools.bench_accuracy import run_benchmark
    h, w = _size(args.size)
    world = dict(train_seqs=args.train_sequences, val_seqs=args.val_sequences, frames=args.frames,
                 height=h, width=w, stereo=args.stereo)
    args.report = run_benchmark(Path(args.output), args.config, args.poses.split(","),
                                [int(s) for s in args.seeds.split(",")], args.steps, world, list(args.overrides))
    return 0


def cmd_benchmark_finetune(args) -> int:
    from .checkpoint import read_checkpoint
    from .shipped import model_file
    from .tools.bench_finetune import run_benchmark
    model = model_file(args.model)
    h, w = _size(args.size) if args.size else tuple(read_checkpoint(model)["input_size"])
    world = dict(bags=args.bags, held_out=args.held_out, frames=args.frames, height=h, width=w,
                 mount_height=args.camera_height)
    args.report = run_benchmark(Path(args.output), model, args.config,
                                [float(f) for f in args.lr_factors.split(",")], world, list(args.overrides))
    return 0


def cmd_benchmark_cameras(args) -> int:
    from .tools.bench_cameras import run_benchmark
    report = run_benchmark(Path(args.model) if args.model else None, args.backend, Path(args.output),
                           args.sequences, args.frames, args.workers, args.native_aspect, args.by_surface,
                           args.seed)
    args.report = report
    return 0


def cmd_benchmark_training(args) -> int:
    from .tools.bench_training import run_benchmark
    args.report = run_benchmark(args.config, Path(args.data) if args.data else None, args.steps, args.warmup,
                                args.arms.split(","), list(args.overrides), Path(args.output), args.threads)
    return 0


def cmd_benchmark_latency(args) -> int:
    from .shipped import model_file
    from .tools.bench_latency import run_benchmark
    model = model_file(args.model)
    rows = run_benchmark(model, args.backends.split(","), _size(args.size) if args.size else None, args.runs,
                         args.warmup, Path(args.output))
    args.report = {"model": str(model), "rows": rows}
    return 0


def cmd_evaluate(args) -> int:
    from .data import find_sequences
    from .evaluate import evaluate_sequences
    from .inference import Predictor
    from .metrics import format_table
    predictor = Predictor(args.model, args.backend)
    metric = bool(predictor.backend.metadata.get("metric", False))
    median = args.median_scaling or (not args.no_median_scaling and not metric)
    height = args.camera_height
    if height is not None:
        if args.protocol:
            raise ValueError("--camera-height works on GT folders, not with --protocol")
        if height != "poses" and not _positive(height):
            raise ValueError(f"--camera-height must be metres > 0 or 'poses', got {height!r}")
        median = False
    if height is not None and not args.bag:
        print(f"scale: camera_height policy ({height}{'' if height == 'poses' else ' m'}), no median scaling")
    elif not args.bag:
        print(f"median scaling: {'on' if median else 'off'} ({'metric' if metric else 'self-supervised'} model)")
    for flag, given in (("--uncertainty", args.uncertainty), ("--by-depth", args.by_depth),
                        ("--by-row", args.by_row)):
        if given and (args.bag or args.protocol):
            raise ValueError(f"{flag} works on GT folders (--data without --protocol)")
    if args.bag:
        return _evaluate_bag(args, predictor, height)
    if not args.data:
        raise ValueError("give --data (a benchmark root or GT folders) or --bag")
    extra: dict = {}
    tables: dict = {}
    if args.protocol:
        from .evaluate import evaluate_protocol
        result = evaluate_protocol(args.protocol, predictor, args.data, median, args.split, args.gt)
    else:
        from .error_bands import depth_bands, row_bands
        from .sparsification import Sparsification
        spars = Sparsification() if args.uncertainty else None
        if args.by_depth:
            tables["by_depth"] = depth_bands(args.max_depth)
        if args.by_row:
            tables["by_row"] = row_bands()
        result = evaluate_sequences(predictor, find_sequences(args.data), median_scaling=median,
                                    max_depth=args.max_depth, camera_height=height, sparsification=spars,
                                    bands=tuple(tables.values()))
        if spars is not None:
            extra["uncertainty"] = _report_uncertainty(spars, args.uncertainty)
        extra.update({name: bands.rows() for name, bands in tables.items()})
    print(format_table(result))
    for bands in tables.values():
        print(f"abs_rel by {bands.title} (pooled over pixels):\n{bands.table()}")
    args.report = {**result, **extra}
    return 0


def _report_uncertainty(spars, plot_path: str) -> dict:
    from .sparsification import plot
    report = spars.report()
    print(f"uncertainty over {report['images']} images (AUSE ratio: 0 = oracle, 1 = random order):")
    for kind, text in (("abs", "|error| (m) by uncertainty (m)"), ("abs_rel", "abs_rel by uncertainty / depth")):
        r = report[kind]
        bands = ", ".join(f"{b['depth_m'][0]:.0f}-{b['depth_m'][1]:.0f} m {b['spearman']:.2f}"
                          for b in r["spearman_by_depth"])
        print(f"  {text}: AUSE {r['ause']:.4f}, random {r['ause_random']:.4f}, ratio {r['ause_ratio']:.2f}, "
              f"Spearman {r['spearman']:.3f}; within depth bands: {bands}")
    print(f"  sparsification plot: {plot(report, plot_path)}")
    return report


def _evaluate_bag(args, predictor, height: str | None) -> int:
    """A recording: metrics against its depth topic (median-scaled and metric), or the photometric error."""
    from .evaluate import bag_ground_truth, bag_photometric_error, evaluate_sequences
    from .metrics import format_table
    if not args.image_topic:
        raise ValueError("--bag needs --image-topic")
    if not args.depth_topic:
        if Path(predictor.model_path).suffix not in (".pt", ".pth"):
            raise ValueError("the photometric error needs a .pt checkpoint (it holds the pose net)")
        error = bag_photometric_error(predictor.model_path, args.bag, args.image_topic, args.camera_info_topic)
        print(f"no depth topic: self-supervised photometric error {error:.4f} (lower is better; compare models "
              f"on the same bag)")
        result: dict = {"photometric": error}
    else:
        sequences = bag_ground_truth(args.bag, args.image_topic, args.depth_topic, args.camera_info_topic)
        metric = evaluate_sequences(predictor, sequences, False, max_depth=args.max_depth, camera_height=height)
        scaled = evaluate_sequences(predictor, sequences, True, max_depth=args.max_depth)
        print(f"{f'camera_height policy ({height} m)' if height else 'no scaling (metric)'}, {metric['images']} "
              f"frames:\n{format_table(metric)}")
        print(f"for reference, median-scaled (each frame scaled to the truth):\n{format_table(scaled)}")
        print(f"scale stability: the per-frame median scale varies by {100 * scaled['scale_std']:.1f}% (std/mean)")
        result = {"median_scaled": scaled, "metric": metric}
    args.report = result
    return 0


def cmd_train(args) -> int:
    from .config import load_config
    from .distributed import shutdown_distributed
    from .run_lock import RunLock
    from .trainer import Trainer
    overrides = list(args.overrides)
    config = args.config
    if config and "=" in config:  # only overrides given
        overrides.insert(0, config)
        config = None
    if args.bag:
        overrides += ["data.source=bag", f"data.path={args.bag}"]
        if args.image_topic:
            overrides.append(f"data.image_topic={args.image_topic}")
        if args.camera_info_topic:
            overrides.append(f"data.camera_info_topic={args.camera_info_topic}")
    if args.init:
        overrides.append(f"model.init={args.init}")
    if args.supervised:
        overrides.append("train.supervised=true")
    cfg = load_config(config, overrides)
    if not cfg.data.path:
        raise ValueError("nothing to train on: give a config (e.g. config/finetune_bag.yaml, or one of "
                         "config/train_*.yaml), --bag BAG --image-topic TOPIC, or data.path=FOLDER")
    main_rank = int(os.environ.get("RANK", "0")) == 0  # torchrun: rank 0 holds the folder for all
    try:
        with RunLock(cfg.run.out_dir) if main_rank else contextlib.nullcontext():
            trainer = Trainer(cfg, resume=not args.restart)
            scalars = trainer.fit()
    finally:
        shutdown_distributed()  # torchrun: leave the process group cleanly
    if trainer.interrupted:
        if main_rank:
            print(f"interrupted ({signal.Signals(trainer.interrupted).name}) at step {trainer.global_step}: "
                  f"state saved to {Path(cfg.run.out_dir) / 'last.pt'}; run the same command to resume",
                  file=sys.stderr)
        return 128 + trainer.interrupted
    if main_rank:
        figures = ", ".join(f"{k} {v:.4f}" for k, v in scalars.items())
        print(f"done: {trainer.global_step} steps (last step: {figures}); checkpoints best.pt and last.pt in "
              f"{cfg.run.out_dir}")
    return 0


def cmd_predict(args) -> int:
    from .image_codec import MAX_PIXELS
    from .pipeline import DepthPolicy
    from .scale import ScaleEstimator
    from .tools.predict import predict_path
    policy = DepthPolicy(ScaleEstimator(args.scale_policy, args.depth_scale, args.camera_height,
                                        pitch=args.camera_pitch),
                         args.min_depth, args.max_depth)
    written, skipped = predict_path(args.input, args.output, args.model, args.backend, policy, args.intrinsics,
                                    args.uncertainty, args.max_pixels or MAX_PIXELS)
    args.report = {"output": str(Path(args.output).resolve()), "written": written,
                   "skipped": [{"image": str(path), "reason": reason} for path, reason in skipped]}
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"wrote depth for {written} image(s) to {args.output}"
          + (f"; skipped {len(skipped)} unreadable image(s)" if skipped else ""))
    return 1 if skipped else 0


class _HelpFormatter(argparse.HelpFormatter):
    """--help shows each option's default, where it has one that its help does not already give."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        hidden = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if hidden or "default" in text or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """A sub-command's parser, with the defaults in its --help."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(prog="spidepth", description="The spidepth command: train, predict, export, "
                                     "evaluate, benchmark, ...", formatter_class=_HelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"spidepth {__version__}")
    sub: Any = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND",
                                     help="one of the commands below; spidepth COMMAND --help for its options")
    for add in _COMMANDS:
        add(sub)
    return parser


_COMMANDS = [_add_train, _add_diagnose, _add_evidence, _add_deploy, _add_compact, _add_convert, _add_export_gt,
             _add_predict, _add_export, _add_evaluate, _add_synth, _add_benchmark]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # section.key=value overrides may also follow options such as --bag or --init
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except KeyboardInterrupt as exc:
        print(f"spidepth {args.command}: interrupted {exc}", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAINING_MODULES or args.verbose:
            raise
        print(f"spidepth {args.command}: error: this needs {exc.name}, which the runtime install does not have: "
              f"{TRAINING_INSTALL}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        print(f"spidepth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a library's own error type (a decoder's, a bag reader's): still one line
        if args.verbose:
            raise
        print(f"spidepth {args.command}: error: {type(exc).__name__}: {first_line(exc)} (-v shows the traceback)",
              file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """The command; with ``--json`` its report too (with ``--json`` alone, stdout holds only the JSON)."""
    where = getattr(args, "json", None)
    with contextlib.redirect_stdout(sys.stderr) if where == "-" else contextlib.nullcontext():
        code = args.func(args)
    if where and getattr(args, "report", None) is not None:
        _write_json(where, args.report)
    return code


if __name__ == "__main__":
    sys.exit(main())
