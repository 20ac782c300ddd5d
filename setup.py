"""Builds the optional C accelerator of the WKProto payload crypto; everything else is in
pyproject.toml. Without a C compiler (or off x86-64) the build skips it and crypto.py runs its
pure-Python path."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wukongim.protocol._wkcrypto",
            ["src/wukongim/protocol/_wkcrypto.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
