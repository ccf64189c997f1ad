from setuptools import find_packages, setup

setup(
    name="harbor-cache",
    version="0.1.0",
    description="Pull-through cache for OCI registries and Maven repositories on Twisted",
    python_requires=">=3.11",
    packages=find_packages(include=["harbor_cache", "harbor_cache.*"]) + ["twisted.plugins"],
    package_data={"twisted": ["plugins/harbor_cache_plugin.py"], "harbor_cache": ["ui/*"]},
    include_package_data=True,
    install_requires=[
        "twisted>=24.7",
        "treq>=24.9",
        "klein>=24.8",
        "pyjwt[crypto]>=2.8",
        "bcrypt>=4.1",
        "service-identity>=24.1",
        "prometheus_client>=0.20",
    ],
    # [index] url = "postgresql://..." (several nodes on one index) needs the driver
    extras_require={"postgresql": ["psycopg2-binary>=2.9"]},
)
