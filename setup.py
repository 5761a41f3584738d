"""Packages of the distribution (the rest of the metadata is in pyproject.toml).

Every ``asif_qdrant*`` package, plus the top-level ``migrations/`` folder (the design card's place for the
numbered schema steps), shipped inside the wheel as ``asif_qdrant.migrations`` so that an installed copy can
migrate a store.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["asif_qdrant*"]), "asif_qdrant.migrations"],
    package_dir={"asif_qdrant.migrations": "migrations"},
)
