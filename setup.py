"""Package metadata. Exact dependency versions live in requirements.lock."""

from setuptools import find_packages, setup

setup(
    name="cfpb-dispute-pipeline",
    version="0.1.0",
    description="End-to-end TFX pipeline predicting consumer disputes of CFPB complaints",
    python_requires=">=3.10,<3.11",
    packages=find_packages(
        include=[
            "cli",
            "data",
            "feedback",
            "lineage",
            "lineage.*",
            "models",
            "monitoring",
            "pipeline",
            "pipeline.*",
            "runners",
            "serving",
        ]
    ),
    package_data={"pipeline": ["schema/*.pbtxt"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]==2.59.0",
        "keras-tuner==1.3.5",
        "tf-keras==2.16.0",
    ],
)
