pytest_plugins = ["localcloud.testing"]
