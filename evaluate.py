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

if __name__ == "__main__":
    # First, before the imports: glibc reads its tunables when the process starts.
    from drugjax.runtime.huge_pages import reexec_with_huge_pages

    reexec_with_huge_pages()

    from drugjax.evaluate import main  # the entry point and its configs ship in the package

    main()
