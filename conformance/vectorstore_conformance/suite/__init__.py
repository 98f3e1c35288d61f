"""The conformance test classes, combined into :class:`vectorstore_conformance.ConformanceSuite`."""
