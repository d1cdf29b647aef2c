"""
Tests of the storage backends: one contract suite (L{tests.backends.contract}) run on each.
"""
