"""targets/brew"""
