"""Only the optional C extension lives here; pyproject.toml holds the project's metadata.

`sampler._native` is heatline's native sampling core. It is optional: where it cannot be built
(no C compiler, no Python headers) the install still succeeds and heatline samples with the
pure-Python walker, saying so in `heatline --version` and the run summary.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sampler._native",
            sources=["sampler/native/module.c", "sampler/native/walker.c", "sampler/native/tables.c"],
            depends=["sampler/native/walker.h"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
