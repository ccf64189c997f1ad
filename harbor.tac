# twistd -ny harbor.tac : the same service as `twistd harbor-cache`, configured by
# $HARBOR_CACHE_CONFIG (a TOML file) or, without it, by the embedded defaults.
from twisted.application import service

from harbor_cache.daemon import make_service
from harbor_cache.settings.startup import load_config

application = service.Application("harbor-cache")
make_service(load_config()).setServiceParent(application)
