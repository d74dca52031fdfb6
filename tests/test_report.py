"""drugjax.evaluation.report: the run's Markdown as escaped HTML, figures embedded."""

from PIL import Image

from drugjax.evaluation.report import markdown_to_html, write_report


def test_markdown_tables_headings_bullets_and_escaping():
    page = markdown_to_html("# Table 2\n\n| a | b |\n|---|---|\n| 1 | <b>x</b> |\n\n- note <script>\ntext & more")
    assert "<h2>Table 2</h2>" in page
    assert "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>&lt;b&gt;x&lt;/b&gt;</td></tr></table>" in page
    assert "<li>note &lt;script&gt;</li>" in page and "<p>text &amp; more</p>" in page
    assert "---" not in page


def test_report_embeds_figures_and_skips_missing_files(tmp_path):
    (tmp_path / "table1.md").write_text("# Table 1\n\n| m | F1 |\n|---|---|\n| MLP | 0.5 |\n")
    Image.new("RGB", (8, 8)).save(tmp_path / "roc.png")
    page = write_report(tmp_path).read_text()
    assert "<td>MLP</td>" in page and "data:image/png;base64," in page
    assert "fig5a" not in page and "src='http" not in page and "<script" not in page
