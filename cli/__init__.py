"""The ``pladacodec`` command line (installed as the package ``pladacodec_cli``)."""
