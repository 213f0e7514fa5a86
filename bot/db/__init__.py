"""Storage: typed models, the engine and session factory, small repositories, migrations."""
