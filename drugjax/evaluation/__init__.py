"""The paper's evaluation protocols: Table 1 (image, text, late fusion by cross-validation),
Table 2 (account features, dealer detection with two experts), Figures 5a-d and the report."""
