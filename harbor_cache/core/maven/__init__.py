"""Maven repositories: proxy cache, group merge, hosted deploy, and browse/info/repository listings."""
