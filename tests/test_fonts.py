"""The shipped CJK font draws Chinese on any machine; missing glyphs are named, never drawn as boxes."""

import warnings

import pytest

from rnnkit import fonts


def test_the_shipped_font_has_every_character_of_gb2312_and_common_punctuation():
    hanzi = []
    for code in range(0x4E00, 0xA000):
        try:
            chr(code).encode("gb2312")
        except UnicodeEncodeError:
            continue
        hanzi.append(chr(code))
    assert len(hanzi) == 6763
    punctuation = "，。！？：；“”（）《》、…"
    assert fonts.missing_glyphs(fonts.SHIPPED_CJK_FONT, [*hanzi, punctuation, "Tom 123"]) == set()


def test_missing_glyphs_names_the_characters_a_font_lacks():
    rare = {"龘", "𠀀"}   # not in GB 2312 nor in the Tatoeba sentences
    assert fonts.missing_glyphs(fonts.SHIPPED_CJK_FONT, ["我龘们", "𠀀"]) == rare


def test_without_a_font_on_the_machine_the_shipped_one_is_used(monkeypatch):
    monkeypatch.setattr(fonts, "_machine_cjk_font", lambda: None)
    assert fonts.find_cjk_font() == fonts.SHIPPED_CJK_FONT
    with pytest.raises(FileNotFoundError, match="no such font file: /nowhere.otf"):
        fonts.find_cjk_font("/nowhere.otf")


def test_matplotlib_draws_chinese_with_the_shipped_font_without_a_missing_glyph_warning(tmp_path):
    from matplotlib.font_manager import FontProperties

    from rnnkit.train.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    ax.set_title("汤姆说法语比玛丽好。", fontproperties=FontProperties(fname=fonts.SHIPPED_CJK_FONT))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # matplotlib warns "Glyph ... missing from font" when it draws boxes
        fig.savefig(tmp_path / "zh.png")
    plt.close(fig)
    assert (tmp_path / "zh.png").stat().st_size > 1000
