"""``stars-cpp`` / ``python -m stars_cpp``: generate from the command line, serve an
OpenAI-compatible API (``serve``), run a JSONL dataset (``run``), convert causal reward
models to GGUF (``convert-reward``) and fit probes on the policy's hidden states
(``fit-probe``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from stars_cpp.errors import error_class
from stars_cpp.settings import GENERATION, add_flags, default, names, output_settings


class UsageError(Exception):
    """A bad argument: exit status 2, one line, no traceback."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    # Both spellings: --progress-every, and --progress_every as in Python.
    flags = [f"--{name.replace('_', '-')}"]
    if "_" in name:
        flags.append(f"--{name}")
    parser.add_argument(*flags, dest=name, **kwargs)


def _engine_flags(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", help="GGUF path (default: the packaged SmolLM2-135M-Instruct)")
    add_flags(parser, command, ("engine", "reward"))


def _settings(args: argparse.Namespace, *groups: str) -> dict[str, Any]:
    """The settings of ``groups`` that this command takes, from its flags."""
    return {name: getattr(args, name) for group in groups
            for name in names(group, args.command)}


def _engine(args: argparse.Namespace, model: str, reward: Any) -> Any:
    """The Engine the flags describe."""
    import stars_cpp

    return stars_cpp.Engine(model, reward, **_settings(args, "engine"))


def _param_flags(parser: argparse.ArgumentParser, command: str) -> None:
    add_flags(parser, command, ("generation",))


def _ridge(text: str) -> float | str:
    """--ridge: a penalty, or "auto"."""
    return text if text == "auto" else float(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stars-cpp", description="STARS decoding-time alignment on llama.cpp.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    gen = commands.add_parser("generate", help="generate a response for one prompt")
    gen.add_argument("prompt", help="the prompt text")
    _engine_flags(gen, "generate")
    gen.add_argument("--raw", action="store_true",
                     help="send the prompt as plain text instead of a user chat message")
    _param_flags(gen, "generate")
    gen.add_argument("--json", action="store_true", help="print the whole Result as JSON")
    gen.add_argument("--verbose", "-v", action="count", default=0,
                     help="print the per-segment trace and the stats to stderr; twice, "
                     "llama.cpp's whole log too (by default only its warnings and errors)")

    srv = commands.add_parser(
        "serve", help="serve the model over an OpenAI-compatible HTTP API",
        description="An OpenAI-compatible server (/v1/chat/completions, /v1/completions, "
        "/v1/models, /health, /metrics) with continuous batching. The flags below set the "
        "defaults of every request; a request sets any STARS parameter as a top-level field "
        "(needs pip install 'stars_cpp[server]').")
    _engine_flags(srv, "serve")
    srv.add_argument("--verbose", action="store_true", help="show llama.cpp's whole log")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    srv.add_argument("--alias", default=None,
                     help="the model name in /v1/models and responses (default: the file name)")
    srv.add_argument("--log-level", "--log_level", dest="log_level", default="info",
                     choices=("critical", "error", "warning", "info", "debug"))
    _param_flags(srv, "serve")

    run = commands.add_parser(
        "run", help="generate for every record of a JSONL file (resumable)",
        description="One output line per input record, written when the record is complete. "
        "Rerun the same command to resume: done ids are skipped, a torn last line is redone. "
        "A record's output depends only on the model, reward, parameters, seed and its id.")
    run.add_argument("input", help="JSONL (or .parquet) records with an id and a prompt or "
                     "messages field")
    run.add_argument("--output", "-o", required=True,
                     help="the JSONL file to write (appended), or a .parquet file")
    _engine_flags(run, "run")
    run.add_argument("--verbose", action="store_true", help="show llama.cpp's whole log")
    run.add_argument("--id-field", "--id_field", dest="id_field", default="id",
                     help="the record's id field (default id; the line number when absent)")
    run.add_argument("--prompt-field", "--prompt_field", dest="prompt_field", default=None,
                     help="the prompt field: a string or chat messages (default: prompt, else "
                     "messages)")
    run.add_argument("--batch", type=int, default=16, help="records in flight (default 16)")
    run.add_argument("--trace", action="store_true", help="write each record's segments")
    run.add_argument("--quiet", action="store_true", help="no progress and no summary")
    run.add_argument("--progress-every", "--progress_every", dest="progress_every", type=int,
                     default=50, help="records between progress lines when stderr is no TTY")
    run.add_argument("--fail-fast", "--fail_fast", dest="fail_fast", action="store_true",
                     help="stop at the first bad record instead of writing an error record")
    run.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                     help="run on Ray: a local one, or the cluster at ADDRESS (e.g. auto)")
    run.add_argument("--workers", type=int, default=2,
                     help="Engine actors on Ray, each loading the model once (default 2)")
    _param_flags(run, "run")

    conv = commands.add_parser(
        "convert-reward", help="convert a transformers causal reward model to GGUF",
        description="Convert a LlamaForSequenceClassification, Qwen2ForSequenceClassification or "
        "Qwen3ForSequenceClassification checkpoint to a GGUF for --reward causal:PATH "
        "(needs pip install 'stars_cpp[convert]').")
    conv.add_argument("hf_dir", help="the Hugging Face model directory (config.json, safetensors)")
    conv.add_argument("out", help="the GGUF file to write")
    conv.add_argument("--quantize", default=None,
                      help="a llama.cpp type to quantize to, e.g. Q8_0 or Q4_K_M")
    conv.add_argument("--label", type=int, default=None,
                      help="which output of a head with several labels is the reward")
    conv.add_argument("--outtype", choices=("f32", "f16", "bf16"), default="f32",
                      help="the converted backbone's type before quantization (default f32)")
    conv.add_argument("--llama-cpp-dir", "--llama_cpp_dir", dest="llama_cpp_dir", default=None,
                      help="a llama.cpp source tree with convert_hf_to_gguf.py (default: "
                      "$STARS_CPP_LLAMA_CPP_DIR, else the installed llama-cpp-python's sdist)")
    conv.add_argument("--verbose", action="store_true",
                      help="show the converter's and the quantizer's logs")

    fit = commands.add_parser(
        "fit-probe", help="fit a probe (a linear head on the policy's hidden states)",
        description="Fits a probe for --reward probe:PATH: ridge regression on JSONL records of "
        "{prompt, response, score}, or Bradley-Terry logistic regression on {prompt, chosen, "
        "rejected}, over the policy's hidden state at each response's last decoded token. "
        "Reports the held-out Pearson correlation or pairwise accuracy.")
    fit.add_argument("input", help="JSONL records: {prompt, response, score}, {prompt, chosen, "
                     "rejected}, {prompt, response} with --score-with, or {prompt} with "
                     "--generate and --score-with")
    fit.add_argument("--output", "-o", required=True, help="the probe file to write")
    fit.add_argument("--model", help="the policy GGUF (default: the packaged "
                     "SmolLM2-135M-Instruct)")
    fit.add_argument("--layer", type=int, default=None,
                     help="the hidden state: n_layer (default) the last layer's output, a "
                     "smaller l the input of layer l")
    fit.add_argument("--ridge", type=_ridge, default="auto",
                     help="the L2 penalty on the normalised weights, or auto (default): chosen "
                     "by 5-fold cross-validation on the training rows")
    fit.add_argument("--holdout", type=float, default=0.2,
                     help="the fraction of records held out and reported on (default 0.2)")
    fit.add_argument("--seed", type=int, default=0,
                     help="the held-out split's seed, and --generate's first seed (default 0)")
    _flag(fit, "score_with", default=None, metavar="SPEC",
          help="score {prompt, response} records first: python:MODULE:FUNCTION, "
          "MODULE:FUNCTION, or a reward spec (judge:PATH|policy, causal:PATH, classifier:PATH)")
    fit.add_argument("--generate", type=int, default=0, metavar="N",
                     help="sample N plain-mode responses per prompt with the policy first")
    _flag(fit, "max_tokens", type=int, default=64,
          help="--generate's response length in tokens (default 64)")
    _flag(fit, "scored_output", default=None, metavar="PATH",
          help="also write the scored training set (JSONL)")
    fit.add_argument("--raw", action="store_true",
                     help="render string prompts as plain text instead of a user chat message")
    fit.add_argument("--quiet", action="store_true", help="no progress bars")
    fit.add_argument("--verbose", action="store_true", help="show llama.cpp's whole log")
    return parser


def _reward(args: argparse.Namespace):
    from stars_cpp.rewards import reward_from_settings

    values = _settings(args, "engine", "reward")
    if args.mode == "plain" and args.command != "serve" and args.reward == default("reward"):
        values["reward"] = "none"  # plain decoding needs no reward: the default one is skipped
    return reward_from_settings(values)


def _model_path(args: argparse.Namespace) -> str:
    from stars_cpp.models import default_model_path

    if args.model is not None:
        return args.model
    try:
        return str(default_model_path())
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None


def _llama_log(verbose: bool) -> None:
    if verbose:  # before any model loads, the reward's included
        from stars_cpp import llama_log

        llama_log.set_verbose()


def _generate(args: argparse.Namespace) -> int:
    _llama_log(args.verbose >= 2)
    model = _model_path(args)
    reward = _reward(args)
    engine = _engine(args, model, reward)
    prompt = args.prompt if args.raw else [{"role": "user", "content": args.prompt}]
    result = engine.generate(prompt, **_settings(args, "generation"))
    if args.verbose:  # the core writes the trace and the JSON, so stars-cli prints the same bytes
        sys.stderr.write(result.trace())
    if args.json:
        print(result.to_json())
    else:
        print(result.text)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    import stars_cpp

    try:
        from stars_cpp import server
    except ImportError as error:
        raise UsageError(f"serve needs the server extra: pip install 'stars_cpp[server]' "
                         f"({error})") from None
    if not 0 <= args.port < 65536:
        raise UsageError(f"--port must be in [0, 65535], got {args.port}")
    _llama_log(args.verbose)
    model = _model_path(args)
    defaults = _settings(args, "generation")
    # A bad default fails now, not on every request.
    stars_cpp.settings.check(defaults, ("generation",))
    engine = _engine(args, model, _reward(args))
    name = args.alias or os.path.basename(model)
    server.serve(engine, name, defaults, args.host, args.port, args.log_level)
    return 0


def _run(args: argparse.Namespace) -> int:
    import stars_cpp
    from stars_cpp import dataset

    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.progress_every < 1:
        raise UsageError(f"--progress-every must be >= 1, got {args.progress_every}")
    _llama_log(args.verbose)
    model = _model_path(args)
    values = _settings(args, "engine", "reward")
    if args.mode == "plain" and args.reward == default("reward"):
        values["reward"] = "none"  # plain decoding needs no reward: the default one is skipped
    spec = None if values["reward"] == "none" else values["reward"]
    params = {name: getattr(args, name) for name in GENERATION if name != "mode"}
    # Bad settings fail now, before any output is written.
    stars_cpp.settings.check({**params, **values})
    # OUT.meta.json records every setting a text can depend on (the table's changes_output),
    # the reward spec and the parameters on their own.
    options = {"mode": args.mode, "params": params, "id_field": args.id_field,
               "prompt_field": args.prompt_field, "batch": args.batch, "trace": args.trace,
               "quiet": args.quiet, "fail_fast": args.fail_fast,
               "progress_every": args.progress_every, "settings": output_settings(values)}
    summary: dict = {}
    if args.ray is not None:
        try:
            import ray  # noqa: F401

            from stars_cpp import ray as stars_ray
        except ImportError:
            raise UsageError("--ray needs Ray: pip install 'stars_cpp[ray]'") from None
        lines = stars_ray.run(args.input, args.output, model=model,
                              engine_settings=values,
                              workers=args.workers, address=args.ray or None,
                              summary=summary, **options)
    else:
        from stars_cpp.rewards import reward_from_settings

        engine = _engine(args, model, reward_from_settings(values))
        lines = dataset.run_dataset(args.input, args.output, engine=engine, reward_spec=spec,
                                    model=model, summary=summary, **options)
    for _ in lines:
        pass
    return 0  # error records are counted in the summary; the run itself completed


def _convert_reward(args: argparse.Namespace) -> int:
    from stars_cpp.convert_reward import convert_reward

    out = convert_reward(args.hf_dir, args.out, quantize=args.quantize, label=args.label,
                         outtype=args.outtype, llama_cpp_dir=args.llama_cpp_dir,
                         verbose=args.verbose)
    print(out)
    return 0


def _fit_probe(args: argparse.Namespace) -> int:
    from stars_cpp.probe import fit_probe

    _llama_log(args.verbose)
    if not 0 <= args.holdout < 1:
        raise UsageError(f"--holdout must be in [0, 1), got {args.holdout}")
    if args.generate < 0:
        raise UsageError(f"--generate must be >= 0, got {args.generate}")
    if args.generate and args.score_with is None:
        raise UsageError("--generate needs --score-with to score the responses it samples")
    report = fit_probe(args.input, args.output, model=_model_path(args), layer=args.layer,
                       ridge=args.ridge, holdout=args.holdout, seed=args.seed,
                       chat=not args.raw, score_with=args.score_with, generate=args.generate,
                       max_tokens=args.max_tokens, progress=not args.quiet,
                       scored_output=args.scored_output)
    print(report.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "convert-reward":
            return _convert_reward(args)
        if args.command == "fit-probe":
            return _fit_probe(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "run":
            return _run(args)
        return _generate(args)
    except UsageError as error:
        print(f"stars-cpp: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stars-cpp: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # every failure is one line, never a traceback
        lines = str(error).splitlines()
        print(f"stars-cpp: error: {lines[0] if lines else type(error).__name__}", file=sys.stderr)
        return error_class(error)["exit_code"]  # the core's error table, as stars-cli's
