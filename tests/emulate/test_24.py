"""The 2.4 fixtures (init_module/cleanup_module objects) on the i386 emulator: the char
device answers with the text its C source defines, MODULE_PARM values reach the variables."""

from __future__ import annotations

import re

from support import FIX24, ROOT


def _session():  # type: ignore[no-untyped-def]
    from lkm.emulate.session import Session

    s = Session(None)
    s.base_dir = str(FIX24)
    return s


def _source_text() -> str:
    """chardev24.c's message template: "...N times..." with N the open count mod 10."""
    src = (ROOT / "fixtures" / "src" / "24" / "chardev24.c").read_text()
    m = re.search(r'static const char text\[\] = "(.*?)";', src)
    assert m is not None
    return m.group(1).encode().decode("unicode_escape")


def test_chardev24_reads_its_source_text_and_counts_opens() -> None:
    s = _session()
    res, out = s.insmod("chardev24.o")
    assert res.ok and res.state == "Live", out
    assert s.kernel is not None and s.kernel.arch.name == "i386"
    template = _source_text()
    for opens in range(3):
        assert s.execute("dev open chardev24").value == 0  # type: ignore[union-attr]
        got = s.execute("dev read chardev24 200")
        assert got is not None
        assert got.output == template.replace("N", str(opens % 10))
        assert got.value == len(got.output)
        assert s.execute("dev read chardev24 200").value == 0  # type: ignore[union-attr]  # EOF
        assert s.execute("dev release chardev24").value == 0  # type: ignore[union-attr]
    assert s.execute("dev open chardev24").value == 0  # type: ignore[union-attr]
    w = s.execute("dev write chardev24 x")
    assert w is not None and w.value == -22 and w.log == ["chardev24: sorry, this operation isn't supported."]
    s.execute("dev release chardev24")
    out2 = s.rmmod("chardev24")
    assert out2.fault is None
    assert "chardev24" not in s.proc("/proc/devices")


def test_chardev24_major_parameter_and_hello24_parameters() -> None:
    s = _session()
    res, _ = s.insmod("chardev24.o", "major=60")
    assert res.ok
    assert " 60 chardev24" in s.proc("/proc/devices")
    # The static count/levels/whom have no symbols in the object (gcc kept only sticky), so
    # modutils' insmod refuses them: "symbol for parameter count not found".
    res, _ = s.insmod("hello24.o", "count=2")
    assert res.state == "Gone" and res.value == -2
    res, out = s.insmod("hello24.o", "sticky=7")
    assert res.ok
    src = (ROOT / "fixtures" / "src" / "24" / "hello24.c").read_text()
    fmt = re.search(r'printk\(KERN_INFO "(hello24: Hello, %s! \(level %d, sticky %d\))\\n"', src)
    assert fmt is not None
    assert out.log == [fmt.group(1) % ("world", 1, 7)]  # the source's defaults: count 1, levels[0] 1
