"""Turn the OpenSearch module jars from Maven Central into installable modules.

The integ-test zip ships only transport-netty4. Our index template and ingest
pipeline need Painless, Mustache, the common ingest processors, user_agent and
the extra field types and the geo aggregations; Maven Central has those modules as jars with their
dependencies (the pom copies them
into ``modules/<name>/``) but without the descriptor and security policy of the
distribution zips, so these are written here, with the values of OpenSearch's
own build files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clickstream_devstack.servers.jvm.properties import java_properties


@dataclass(frozen=True)
class Module:
    name: str
    description: str
    classname: str
    extended_plugins: str = ""
    policy: str = ""


MODULES = (
    Module(
        "lang-painless",
        "An easy, safe and fast scripting language for OpenSearch",
        "org.opensearch.painless.PainlessPlugin",
        # Painless compiles scripts to classes at run time.
        policy=(
            "grant {\n"
            '  permission java.lang.RuntimePermission "createClassLoader";\n'
            '  permission java.lang.RuntimePermission "getClassLoader";\n'
            "};\n"
        ),
    ),
    Module(
        "ingest-common",
        "Module for ingest processors that do not require additional security permissions "
        "or have large dependencies and resources",
        "org.opensearch.ingest.common.IngestCommonPlugin",
        extended_plugins="lang-painless",
    ),
    Module(
        "ingest-user-agent",
        "Ingest processor that extracts information from a user agent",
        "org.opensearch.ingest.useragent.IngestUserAgentPlugin",
    ),
    Module(
        # The {{{_ingest.timestamp}}} template of our pipeline's set processor.
        "lang-mustache",
        "Mustache scripting integration for OpenSearch",
        "org.opensearch.script.mustache.MustachePlugin",
        policy=(
            "grant {\n"
            '  permission java.lang.reflect.ReflectPermission "suppressAccessChecks";\n'
            '  permission java.lang.RuntimePermission "accessDeclaredMembers";\n'
            "};\n"
        ),
    ),
    Module(
        # scaled_float and other field types.
        "mapper-extras",
        "Adds advanced field mappers",
        "org.opensearch.index.mapper.MapperExtrasPlugin",
    ),
    Module(
        # geohash_grid: the dashboard's map panel.
        "geo",
        "Plugin for geospatial features in OpenSearch",
        "org.opensearch.geo.GeoModulePlugin",
    ),
)


def install_modules(home: Path, version: str) -> list[str]:
    """Write the descriptor (and policy) of every module whose jars are in ``home``."""
    installed = []
    for module in MODULES:
        folder = home / "modules" / module.name
        if not folder.is_dir():
            continue
        descriptor = {
            "description": module.description,
            "version": version,
            "name": module.name,
            "classname": module.classname,
            "java.version": "11",
            "opensearch.version": version,
            "extended.plugins": module.extended_plugins,
            "has.native.controller": "false",
        }
        (folder / "plugin-descriptor.properties").write_text(java_properties(descriptor))
        if module.policy:
            (folder / "plugin-security.policy").write_text(module.policy)
        installed.append(module.name)
    return installed
