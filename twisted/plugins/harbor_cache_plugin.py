"""`twistd harbor-cache` (and `twist harbor-cache`): the server with the config of your choice.

No file is needed: with no options it listens on tcp:5001 and keeps its data
in ./data.  `--config` (or $HARBOR_CACHE_CONFIG) names a TOML file;
`--listen` and `--data-dir` override it.
"""

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


class Options(usage.Options):
    optParameters = [
        ["config", "c", None, "TOML configuration file (default: $HARBOR_CACHE_CONFIG, else none)"],
        ["listen", "l", None, "Twisted endpoint to listen on (default tcp:5001)"],
        ["data-dir", "d", None, "Directory for the index and cached content (default ./data)"],
    ]


@implementer(IServiceMaker, IPlugin)
class HarborCacheServiceMaker:
    tapname = "harbor-cache"
    description = "Pull-through cache for OCI registries and Maven repositories"
    options = Options

    def makeService(self, options):
        """The service; a configuration that cannot work (a bad key, a missing optional driver) is one
        line on stderr and a non-zero exit, never a traceback."""
        from harbor_cache.daemon import make_service
        from harbor_cache.settings.optional import MissingDependency
        from harbor_cache.settings.startup import ConfigError, load_config

        try:
            config = load_config(options["config"], listen=options["listen"], data_dir=options["data-dir"])
        except (ConfigError, MissingDependency) as e:
            raise SystemExit(str(e)) from None
        return make_service(config)


serviceMaker = HarborCacheServiceMaker()
