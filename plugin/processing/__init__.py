"""The Processing provider and its algorithms (toolbox, batch, modeller, qgis_process)."""
