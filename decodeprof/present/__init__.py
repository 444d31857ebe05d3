"""Display: how results are written and shown (files, terminal tables, HTML). Standard library
at import time; each writer imports what it draws with."""
