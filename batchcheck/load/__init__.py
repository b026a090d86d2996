"""Loaders: any model file → one frozen GraphDef; the input, outputs and feeds resolved; image pools."""
