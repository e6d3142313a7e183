"""The manual pages (man/*.scd, built by man/CMakeLists.txt into
AGRI_BUILD_DIR/man/) render and agree with the programs' --help:

- `man --warnings -E UTF-8 -l -Tutf8 -Z PAGE` (what lintian runs) prints no
  warning, and `man -l PAGE` renders NAME, SYNOPSIS and the sections an
  operator looks for: the options, FILES, EXIT STATUS, EXAMPLES (in the
  Vietnamese page, their Vietnamese titles);
- every option `PROG --help` prints is defined in the page (a line of the
  source starting with `*-`, e.g. `*-c*, *--config* _FILE_`), and every
  option the page defines is in --help; only `--help` itself may be missing
  from a --help text (agri-sim's);
- every option --help prints is in the rendered text (hyphenation undone);
- agrictl, per command: the commands of --help are the page's `## COMMAND`
  sections, and each command's options in --help are in its section.
So a new option, or one removed, fails here until the page follows.
"""
import gzip
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

R = harness.Result("test_manpages")
OPT = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
BOLD_OPT = re.compile(r"\*(--?[A-Za-z][\w-]*)\*")

# program -> its pages: (path under man/, language)
PAGES = {
    "agri-station": [("agri-station.8", "en")],
    "agri-gateway": [("agri-gateway.8", "en")],
    "agri-sim": [("agri-sim.1", "en")],
    "agrictl": [("agrictl.1", "en"), ("vi/agrictl.1", "vi")],
}
SECTIONS = {
    "en": ["NAME", "SYNOPSIS", "OPTIONS", "FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"],
    "vi": ["TÊN", "CÚ PHÁP", "TÙY CHỌN", "TỆP", "MÃ THOÁT", "VÍ DỤ", "XEM THÊM"],
}


def help_text(prog):
    res = harness.run([harness.bin_path(prog), "--help"], timeout=30)
    return res.returncode, res.stdout


def help_commands(text):
    """agrictl --help: {command: set of its options}."""
    cmds, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^  ([a-z][a-z-]*(?: [a-z][a-z-]*)*)(?=\s|$)", line)
        if m:
            words = []
            for w in m.group(1).split():
                if not re.match(r"^[a-z][a-z-]*$", w):
                    break
                words.append(w)
            cur = " ".join(words)
            cmds.setdefault(cur, set())
        elif not line.startswith("    "):
            cur = None
        if cur:
            cmds[cur] |= set(OPT.findall(line))
    return cmds


def page_sections(src):
    """The scdoc source's `## NAME` subsections: {name: text}."""
    out, cur = {}, None
    for line in src.splitlines():
        if line.startswith("## "):
            cur = line[3:].strip()
            out[cur] = ""
        elif line.startswith("# "):
            cur = None
        elif cur:
            out[cur] += line + "\n"
    return out


def defined(src):
    """Options the page defines: bold options on lines starting with *-."""
    opts = set()
    for line in src.splitlines():
        if line.startswith("*-"):
            opts |= set(BOLD_OPT.findall(line))
    return opts


def render(path, width="80"):
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH=width, MANROFFSEQ="", MAN_KEEP_FORMATTING="")
    strict = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path],
                            capture_output=True, text=True, env=env, timeout=60)
    plain = subprocess.run(["man", "-l", path], capture_output=True, text=True, env=env, timeout=60)
    text = re.sub(r".\x08", "", plain.stdout)
    # undo hyphenation and the typographic hyphen/minus groff may print
    text = re.sub("\u2010\n\\s+", "", text)
    text = text.replace("\u2010", "-").replace("\u2212", "-")
    return strict, plain.returncode, text


def check_page(prog, rel, lang, help_rc, htext):
    gz = os.path.join(harness.BUILD, "man", rel + ".gz")
    src_path = os.path.join(harness.SRC, "man", rel + ".scd")
    name = "%s (%s)" % (rel, lang)
    if not R.check(os.path.exists(gz), "%s is built: %s" % (name, gz)):
        return
    with open(src_path, encoding="utf-8") as f:
        src = f.read()
    with gzip.open(gz, "rt", encoding="utf-8") as f:
        roff = f.read()
    R.check(".TH \"%s\"" % prog in roff and "@AGRI_VERSION@" not in roff,
            "%s: .TH names %s, the version is filled in" % (name, prog))

    strict, rc, text = render(gz)
    warnings = [ln for ln in strict.stderr.splitlines() if ln.strip()]
    R.check(strict.returncode == 0 and not warnings,
            "%s: man --warnings renders without a warning (%s)" % (name, warnings[:3]))
    missing_sec = [s for s in SECTIONS[lang] if not re.search(r"^%s\s*$" % re.escape(s), text, re.M)]
    R.check(rc == 0 and not missing_sec, "%s: man -l renders %s (missing %s)"
            % (name, ", ".join(SECTIONS[lang]), missing_sec))

    hopts = set(OPT.findall(htext))
    popts = defined(src)
    not_in_page = sorted(hopts - popts)
    not_in_help = sorted(popts - hopts - ({"--help"} if help_rc == 0 else set()))
    R.check(help_rc == 0 and hopts and not not_in_page,
            "%s: every option of %s --help is defined in the page (missing %s)" % (name, prog, not_in_page))
    R.check(popts and not not_in_help,
            "%s: every option the page defines is in %s --help (not in --help: %s)"
            % (name, prog, not_in_help))
    unrendered = sorted(o for o in hopts if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), text))
    R.check(not unrendered, "%s: every --help option is in the rendered page (missing %s)" % (name, unrendered))

    if prog == "agrictl":
        hc = help_commands(htext)
        sections = page_sections(src)
        R.check(set(hc) == set(sections),
                "%s: the commands of agrictl --help are the page's sections (help %s, page %s)"
                % (name, sorted(hc), sorted(sections)))
        bad = {c: sorted(o for o in opts if "*%s*" % o not in sections.get(c, ""))
               for c, opts in hc.items()}
        bad = {c: v for c, v in bad.items() if v}
        R.check(not bad, "%s: each command's options in --help are in its section (missing %s)" % (name, bad))


def main():
    for prog, pages in PAGES.items():
        try:
            help_rc, htext = help_text(prog)
        except FileNotFoundError as e:
            R.check(False, "%s is built (%s)" % (prog, e))
            continue
        for rel, lang in pages:
            check_page(prog, rel, lang, help_rc, htext)
    R.done()


if __name__ == "__main__":
    main()
