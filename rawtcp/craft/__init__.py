"""Packet crafting above the wire layer: single probes (``probe``), bounded SYN floods (``flood``) and the
benchmark that sets rawtcp beside the kernel, scapy, hping3 and tshark (``bench``)."""
