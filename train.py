"""Train the image model of Yang & Luo (2016) (backbone, shared trunk, task heads).

    python train.py [group=option ...] [key=value ...]

The same as ``python -m drugjax.train``: the entry point and its configs ship in the package
(drugjax/train.py lists the common commands; docs/training.md explains them).
"""

if __name__ == "__main__":
    # First, before the imports: glibc reads its tunables when the process starts.
    from drugjax.runtime.huge_pages import reexec_with_huge_pages

    reexec_with_huge_pages()

    from drugjax.train import main  # the entry point and its configs ship in the package

    main()
