"""escape_controls: untrusted text printed without terminal control sequences."""

from drugjax.runtime.textsafe import escape_controls


def test_controls_become_visible_escapes_and_the_rest_stays():
    assert escape_controls("a\x1b[31mred\x07") == "a\\x1b[31mred\\x07"
    assert escape_controls("two\nlines\r\tx") == "two\\nlines\\r\\tx"
    assert escape_controls("\u202eevil\u2066") == "\\u202eevil\\u2066"  # bidi overrides reorder the display
    assert escape_controls("nul\x00 c1\x9b sep\u2028") == "nul\\x00 c1\\x9b sep\\u2028"
    assert escape_controls("bad\udcff") == "bad\\udcff"  # an undecodable byte in a file name
    assert escape_controls("Plug 🔌 über 日本 #xans") == "Plug 🔌 über 日本 #xans"
    assert escape_controls(3) == "3"
