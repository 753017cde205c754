"""sources/kafka"""
