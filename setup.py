"""The native parts: models/_textscan.c (the hot text path of feature extraction),
models/_statecore.c (the per-account state update), models/_linkprofile.c (cross-account linking:
the link observer and the linker), models/_eventfront.c (prompt parts and link records) and schemas/_eventcheck.c (the request event's build from decoded JSON);
models/native.py says how they are used.

Everything else is in pyproject.toml. The extensions are optional: where they cannot be built (no C
compiler), the install goes on and distillguard uses the pure-Python code, which gives the same
results (tests/test_native.py); ``distillguard doctor`` says which one runs.
"""
from setuptools import Extension, setup

# no fused multiply-add: the C must round like the Python it stands in for
_FLAGS = ["-O2", "-ffp-contract=off"]
_EXTENSIONS = {"models": ("_textscan", "_statecore", "_linkprofile", "_eventfront"), "schemas": ("_eventcheck",)}
_HEADERS = ["models/_namedtuple.h"]   # shared by _eventfront.c and _linkprofile.c
setup(ext_modules=[Extension(f"distillguard.{package}.{name}", [f"{package}/{name}.c"], extra_compile_args=_FLAGS,
                             depends=_HEADERS, optional=True) for package, names in _EXTENSIONS.items() for name in names])
