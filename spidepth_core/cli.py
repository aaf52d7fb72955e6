"""The ``spidepth`` command: train, predict, export, evaluate, benchmark, ..."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("spidepth")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="self-supervised training (or fine-tuning) from a YAML config")
    p.add_argument("config", nargs="?", help="YAML config (see config/train_*.yaml)")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.lr=1e-4")
    p.add_argument("--restart", action="store_true", help="ignore an existing last.pt in run.out_dir")
    p.set_defaults(func=cmd_train)


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="depth for an image or a folder of images")
    p.add_argument("input", help="image file or folder")
    p.add_argument("--model", help="checkpoint / ONNX / engine (default: the bundled model)")
    p.add_argument("--backend", default="auto", choices=["auto", "tensorrt", "onnxruntime", "torch"])
    p.add_argument("--output", default="depth_out", help="output folder (default: depth_out)")
    p.set_defaults(func=cmd_predict)


def cmd_train(args) -> int:
    from .config import load_config
    from .trainer import Trainer
    overrides = list(args.overrides)
    config = args.config
    if config and "=" in config:  # only overrides given
        overrides.insert(0, config)
        config = None
    cfg = load_config(config, overrides)
    trainer = Trainer(cfg, resume=not args.restart)
    scalars = trainer.fit()
    if trainer.dist.is_main:
        print(f"done: {trainer.global_step} steps; last: {scalars}; run folder {cfg.run.out_dir}")
    return 0


def cmd_predict(args) -> int:
    from .predict import predict_path
    written = predict_path(args.input, args.output, args.model, args.backend)
    print(f"wrote depth for {written} image(s) to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spidepth", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


_COMMANDS = [_add_train, _add_predict]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
        print(f"spidepth {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
