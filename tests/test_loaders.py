import os
import subprocess
import sys

import pytest
from conftest import DOC_FIXTURES, FIXTURES, unprivileged

from longdoc.errors import SkippedFile
from longdoc.indexing.loaders import load_document


def test_markdown_sections_follow_headings_and_skip_code_fences():
    doc = load_document(FIXTURES / "lighthouses.md")
    paths = [s.path for s in doc.sections]
    assert paths == [
        ("Lighthouses of the Northern Coast",),
        ("Lighthouses of the Northern Coast", "Construction"),
        ("Lighthouses of the Northern Coast", "Construction", "Foundations"),
        ("Lighthouses of the Northern Coast", "Lighting"),
        ("Lighthouses of the Northern Coast", "Keeping the Light"),  # setext heading
    ]
    assert doc.title == "Lighthouses of the Northern Coast"
    # Sections tile the text exactly.
    assert doc.sections[0].char_start == 0 and doc.sections[-1].char_end == len(doc.text)
    assert all(a.char_end == b.char_start for a, b in zip(doc.sections, doc.sections[1:]))


def test_rst_heading_levels_by_adornment_style():
    doc = load_document(FIXTURES / "tides.rst")
    assert [s.path for s in doc.sections] == [
        ("Tides and Harbours",),
        ("Tides and Harbours", "Spring and neap tides"),
        ("Tides and Harbours", "Spring and neap tides", "Reading a tide table"),
        ("Tides and Harbours", "Harbour design"),
    ]


def test_html_text_drops_scripts_and_keeps_headings():
    doc = load_document(FIXTURES / "keepers.html")
    assert "tracking" not in doc.text and "font-family" not in doc.text
    assert "& the comfort of a radio" in doc.text
    assert doc.title == "Lighthouse Keepers' Lives"
    assert [s.path[-1] for s in doc.sections] == ["Lighthouse Keepers' Lives", "Daily routine", "Isolation", "Letters home"]
    for s in doc.sections:
        assert doc.text[s.char_start:s.char_end].startswith(s.path[-1])


def test_pdf_pages_map_text_back_to_page_numbers():
    doc = load_document(FIXTURES / "lighthouse_log.pdf")
    assert len(doc.pages) == 3
    assert doc.pages[0][0] == 0 and doc.pages[-1][1] == len(doc.text)
    feb = doc.text.index("diaphone sounded")
    assert doc.page_at(feb) == 2
    assert doc.page_at(doc.text.index("inspector")) == 3


def test_legacy_encoding_is_detected():
    doc = load_document(FIXTURES / "phare_latin1.txt")
    assert doc.encoding.lower() in {"cp1252", "latin_1", "iso8859_1", "iso-8859-1", "windows-1252", "iso8859_15"}
    assert "café à l'aube" in doc.text and "tempêtes" in doc.text


# Text in the languages each legacy encoding was made for: every file must decode back exactly.
LEGACY_TEXTS = [
    ("fr", "latin-1", "Le gardien du phare était très fatigué après la tempête. Déjà le garçon voulait aller à "
                      "la côte où les bateaux arrivaient ; il mangea une pâtisserie près de la fenêtre."),
    ("fr", "cp1252", "« Où est passé le cœur du navire ? » demanda l’ancien marin, qui avait connu l’été 1923."),
    ("pt", "latin-1", "O faroleiro não sabia se a canção era de São João. A operação foi difícil e a "
                      "tripulação estava cansada após a tempestade, mas ninguém desistiu."),
    ("de", "cp1252", "Der Leuchtturmwärter öffnete die Tür, während draußen der Sturm über die Küste zog – "
                     "so stand es im Logbuch für 50 € verkauft."),
    ("es", "latin-1", "El farero subió a la torre por la mañana; ¿quién encendería la lámpara si él no volvía?"),
    ("cs", "cp1250", "Strážce majáku zapsal do deníku, že bouře přišla v noci a loď se ztratila v mlze u útesů."),
    ("pl", "cp1250", "Latarnik zapisał w dzienniku, że sztorm przyszedł nocą, a łódź zniknęła we mgle przy skałach."),
    ("hu", "cp1250", "A világítótorony őre feljegyezte, hogy a vihar éjjel érkezett, és a hajó eltűnt a ködben."),
    ("ru", "cp1251", "Смотритель маяка записал в журнал, что шторм пришёл ночью, а лодка исчезла в тумане у скал."),
    ("bg", "cp1251", "Пазачът на фара записа в дневника, че бурята дойде през нощта и лодката изчезна в мъглата."),
    ("uk", "cp1251", "Доглядач маяка записав у журналі, що шторм прийшов уночі, а човен зник у тумані біля скель."),
]


@pytest.mark.parametrize("lang,encoding,text", LEGACY_TEXTS, ids=lambda v: v if len(v) < 10 else "")
def test_legacy_single_byte_text_decodes_exactly(tmp_path, lang, encoding, text):
    path = tmp_path / f"{lang}.txt"
    path.write_bytes(((text + "\n") * 3).encode(encoding))
    doc = load_document(path)
    assert doc.text == (text + "\n") * 3


@pytest.mark.parametrize("path", DOC_FIXTURES, ids=lambda p: p.name)
def test_every_fixture_loads_with_text(path):
    doc = load_document(path)
    assert len(doc.text.strip()) > 100


# --- bad input: each is refused with a reason naming the file ----------------------------------

def _skip_reason(path, **kw) -> str:
    with pytest.raises(SkippedFile) as info:
        load_document(path, **kw)
    assert str(path) in str(info.value)
    return info.value.reason


def test_binary_file_is_refused(tmp_path):
    p = tmp_path / "image.txt"
    p.write_bytes(bytes(range(256)) * 40)
    assert "binary" in _skip_reason(p)


def test_empty_file_is_refused(tmp_path):
    p = tmp_path / "empty.md"
    p.write_bytes(b"  \n\n")
    assert "empty" in _skip_reason(p)


def test_invalid_utf8_garbage_is_refused(tmp_path):
    p = tmp_path / "garbage.txt"
    import random

    rng = random.Random(1)
    p.write_bytes(b"start " + bytes(rng.randrange(0x80, 0x100) for _ in range(3000)))
    assert "not valid UTF-8" in _skip_reason(p)


def test_utf8_with_corrupt_bytes_is_refused_not_misread_as_cp1252(tmp_path):
    p = tmp_path / "corrupt.md"
    body = "# Café notes\n\n" + "Le phare était allumé à l'aube, et le gardien notait la météo.\n" * 20
    p.write_bytes(body.encode() + b"\xff\xfe broken \x80 tail\n")
    assert "invalid UTF-8" in _skip_reason(p)


def test_huge_file_is_refused_before_reading(tmp_path):
    p = tmp_path / "huge.txt"
    p.write_text("word " * 300_000)
    assert "over the" in _skip_reason(p, max_bytes=1_000_000)


def test_truncated_pdf_is_refused(tmp_path):
    data = (FIXTURES / "lighthouse_log.pdf").read_bytes()
    p = tmp_path / "truncated.pdf"
    p.write_bytes(data[: len(data) // 3])
    reason = _skip_reason(p)
    assert "PDF" in reason


def test_not_a_pdf_is_refused(tmp_path):
    p = tmp_path / "fake.pdf"
    p.write_text("this is plain text pretending to be a pdf")
    assert "not a PDF" in _skip_reason(p)


def test_unreadable_file_is_refused(tmp_path):
    p = tmp_path / "gone.txt"
    os.symlink(tmp_path / "missing-target.txt", p)  # a dangling link: open() fails even for root
    assert "cannot read" in _skip_reason(p)


def test_permission_denied_is_refused(tmp_path):
    p = tmp_path / "secret.txt"
    p.write_text("secret text")
    p.chmod(0)
    # In a process bound by file modes (root's override dropped), as a user without read access would be.
    probe = (f"from longdoc.errors import SkippedFile\nfrom longdoc.indexing.loaders import load_document\n"
             f"try:\n    load_document({str(p)!r})\nexcept SkippedFile as e:\n    print(e.reason)")
    run = subprocess.run([*unprivileged(), sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "cannot read" in run.stdout, run.stdout + run.stderr


def test_unsupported_extension_is_refused(tmp_path):
    p = tmp_path / "table.xlsx"
    p.write_bytes(b"PK\x03\x04")
    assert "unsupported file type" in _skip_reason(p)
