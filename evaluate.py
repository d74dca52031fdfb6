"""Run the paper's evaluation (Tables 1-2, Figures 5a-d, report.html).

    python evaluate.py [group=option ...] [key=value ...]

The same as ``python -m drugjax.evaluate``: the entry point and its configs ship in the package
(drugjax/evaluate.py lists the common commands; docs/evaluation.md explains them).
"""

if __name__ == "__main__":
    # First, before the imports: glibc reads its tunables when the process starts.
    from drugjax.runtime.huge_pages import reexec_with_huge_pages

    reexec_with_huge_pages()

    from drugjax.evaluate import main  # the entry point and its configs ship in the package

    main()
