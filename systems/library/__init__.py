"""The library: the main library's INNOPAC WebPAC, the Zhuhai campus ILAS, covers.
Its clients and page parsers (innopac*.py, ilas*.py, covers.py, holdings.py, isbn.py),
models, service (service.py), the 2013 and /v1/ handlers (legacy.py, v1.py), config
sections (config.py) and how they are built (assembly.py). No credentials: one
student's answer serves every other. Its simulator is schoolsim/library/."""

from systems.library.config import CoverServiceConfig, MainCatalogueConfig, ZhuhaiCatalogueConfig
from systems.plugin import SchoolSystem, Upstream

SYSTEM = SchoolSystem(
    name="library",
    title="the library",
    upstreams=(
        Upstream("library", "the library catalogue", MainCatalogueConfig, "/opac"),
        Upstream("library_zhuhai", "the Zhuhai library catalogue", ZhuhaiCatalogueConfig, "/ilas"),
        Upstream("covers", "the cover service", CoverServiceConfig, "/covers"),
    ),
)
