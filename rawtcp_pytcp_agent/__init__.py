# rawtcp's agent for PyTCP: drives PyTCP (https://github.com/ccie18643/PyTCP) for rawtcp's labs.
# Copyright (C) the rawtcp authors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This program is free software: you can redistribute it and/or modify it under the terms of the GNU
# General Public License as published by the Free Software Foundation, either version 3 of the License,
# or (at your option) any later version.
#
# This program is distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY; without even
# the implied warranty of MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the GNU General Public
# License for more details. You should have received a copy of the GNU General Public License along with
# this program. If not, see <https://www.gnu.org/licenses/>.
"""rawtcp's agent for PyTCP (GPL-3.0-or-later, as PyTCP is): ``python -m rawtcp_pytcp_agent``.

This package is the only code that imports pytcp. rawtcp (MIT) talks to it over the agent protocol
(docs/agent-protocol.md) and never imports it; it is installed with the ``rawtcp[pytcp]`` extra.
"""
