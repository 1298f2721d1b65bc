"""Family declarations for the pipeline: ``task.family`` names one of these classes."""
