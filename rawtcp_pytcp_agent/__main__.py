# rawtcp's agent for PyTCP. Copyright (C) the rawtcp authors.
# SPDX-License-Identifier: GPL-3.0-or-later (it imports PyTCP, which is GPL-3.0); see __init__.py.
"""``python -m rawtcp_pytcp_agent``: see rawtcp_pytcp_agent.agent."""

import sys

from rawtcp_pytcp_agent.agent import main

sys.exit(main())
