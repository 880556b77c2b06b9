"""Only here to name the cffi extension; everything else is in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["supervisor/kernel/native/build.py:ffibuilder"])
