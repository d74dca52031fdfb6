"""Train the image model of Yang & Luo (2016): Inception-v1 -> shared trunk -> task heads.

    python train.py                                  # the paper's MT MLP on the embedded synthetic world
    python train.py experiment=finetune              # end to end from the stand-in backbone
    python train.py experiment=paper_mlp             # Table 1's single-task MLP baseline
    python train.py data=dir data.root=/path/to/ROOT steps=2000 data.batch_size=64
    python train.py -m model.relation_weight=0,0.25,0.5,0.75,1   # relation-weight ablation
    python train.py -m hparams_search=optuna         # Optuna TPE (pip install -e '.[sweep]')

A run lives in runs/<name>; running the same command again resumes from its latest
checkpoint. A multirun lives in runs/<name>-multirun/, one numbered directory per job
(<job>/.hydra/overrides.yaml says which), with summary.csv and summary.md across the
jobs; the same sweep again resumes its jobs, a different one there is refused. See
docs/training.md.
"""

if __name__ == "__main__":
    # First, before the imports: glibc reads its tunables when the process starts.
    from drugjax.runtime.huge_pages import reexec_with_huge_pages

    reexec_with_huge_pages()

    from drugjax.train import main  # the entry point and its configs ship in the package

    main()
