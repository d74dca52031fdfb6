"""The paper's evaluation of drug-related post recognition (Yang & Luo 2016, Section 2.3).

    python evaluate.py                                # Table 1 on the synthetic paper world
    python evaluate.py split=account                  # folds by account instead of by post
    python evaluate.py fusion.weight=0.7 threshold=0.4
    python evaluate.py model.backbone.weights=googlenet.pth    # pretrained Inception-v1
    python evaluate.py model.backbone.weights=runs/NAME        # a train.py run's backbone
    python evaluate.py data=dir data.root=/path/to/ROOT name=mydata

Five-fold cross-validation (data.num_folds) of the image classifiers (MLP, MT MLP on frozen
backbone features), the text classifiers (tags, caption, both) and their late fusion;
writes table1.md/.csv/.json, predictions.csv, roc.png, precision_recall.png,
fusion_weights.md/.csv/.png, run.json and models/ into runs/evaluate/<name>, and prints
Table 1 beside the paper's numbers. Then, where the data has accounts, the account
features, dealer detection with two experts (Table 2: table2.md/.csv/.json,
account_features.csv, fig5a-d_*.png, models/dealers.joblib), printed beside the paper's;
report.html holds both tables and every figure in one page. See docs/evaluation.md and
docs/accounts.md.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from drugjax.errors import USER_ERRORS, full_disk_reported, print_error
from drugjax.evaluation.config import EvaluateConfig, register_configs
from drugjax.runtime import progress
from drugjax.runtime.overrides import exit_on_unknown_keys
from drugjax.runtime.runlock import RunLock
from drugjax.runtime.hydra_record import record_writer

register_configs()


def run(cfg: DictConfig) -> dict:
    """Run the protocol per ``cfg``, print Table 1 and where the files are; returns
    :func:`drugjax.evaluation.protocol.run`'s summary."""
    from drugjax.evaluation.config import check, to_config
    from drugjax.training.config import ConfigError

    for name in ("absl", "jax"):
        logging.getLogger(name).setLevel(logging.WARNING)
    config = to_config(cfg)
    progress.set_enabled(config.progress)
    workdir = config.workdir
    if workdir is None:
        if not HydraConfig.initialized():
            raise ConfigError("workdir is not set and there is no Hydra run directory; pass workdir=PATH")
        workdir = HydraConfig.get().runtime.output_dir
    check(config)
    # A full disk is one line: each output and cache names its file; anything else, the run.
    with RunLock(workdir), full_disk_reported(f"the run {workdir}"):  # one process per run directory
        return _run_locked(cfg, config, workdir)


def _run_locked(cfg: DictConfig, config: EvaluateConfig, workdir: str) -> dict:
    from drugjax.runtime.textsafe import escape_controls
    from drugjax.evaluation import account_protocol, protocol
    from drugjax.evaluation.config import train_config
    from drugjax.evaluation.dealers import format_table2_markdown
    from drugjax.evaluation.report import write_model_card, write_report
    from drugjax.evaluation.tables import format_table1_markdown
    from drugjax.training import inputs

    sources = inputs.load_sources(train_config(config))
    out = protocol.run(config, workdir, sources=sources, on_start=record_writer(cfg))
    counts, seconds = out["counts"], out["seconds"]
    print(f"Table 1 ({counts['posts']} posts, {counts['positives']} drug-related; {config.data.num_folds} folds "
          f"by {config.split}; {seconds['total']:.0f} s)\n", flush=True)
    print(format_table1_markdown(out["table1"]), flush=True)
    if "accounts" in sources and len(sources["accounts"]):
        accounts = account_protocol.run(config, workdir, sources["accounts"], out["checkpoint"])
        out["accounts"] = accounts
        out["files"].update(accounts["files"])
        c = accounts["counts"]
        if accounts["skipped"]:
            print(f"\n{accounts['skipped']}", flush=True)
        else:
            print(f"\nTable 2 ({c['accounts']} accounts, dealers: expert 1 {c['exp1_dealers']}, expert 2 "
                  f"{c['exp2_dealers']}; {config.dealers.num_folds} folds)\n", flush=True)
            print(format_table2_markdown(accounts["table2"]), flush=True)
    else:
        print("\nno accounts.jsonl in the data: Table 2 and Figure 5 need accounts with timelines (skipped)",
              flush=True)
    out["files"]["report"] = write_report(workdir, title=f"drugjax evaluation: {config.name}")
    card = write_model_card(workdir)
    if card is not None:
        out["files"]["model_card"] = card
    print(f"wrote {', '.join(sorted(p.name for p in out['files'].values()))} in {escape_controls(workdir)}", flush=True)
    return out


def main() -> None:
    """The command line: overrides naming no config key end in one ``error:`` line with
    the nearest key (exit 2) before Hydra starts; then Hydra's entry point."""
    exit_on_unknown_keys(EvaluateConfig, "evaluate.py")
    hydra_main()


@hydra.main(config_path="conf", config_name="evaluate", version_base=None)
def hydra_main(cfg: DictConfig) -> None:
    """Hydra entry point: user errors end in one ``error:`` line and exit status 1; a
    backbone checkpoint refused for leakage (drugjax.evaluation.leakage) with status 2."""
    from drugjax.evaluation.leakage import LeakageError

    try:
        run(cfg)
    except LeakageError as e:  # a backbone that saw the posts it would score: exit 2
        print_error(e)
        sys.exit(2)
    except USER_ERRORS as e:
        print_error(e)
        sys.exit(1)


if __name__ == "__main__":  # python -m drugjax.evaluate
    from drugjax.runtime.huge_pages import reexec_with_huge_pages

    reexec_with_huge_pages(module="drugjax.evaluate")
    main()
