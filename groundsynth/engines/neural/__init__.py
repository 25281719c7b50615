"""Neural engines that load the user's local weights: SegFormer, SPADE, VLM captions, CLIP grounding.
torch, transformers and open_clip are imported only when an engine is built.
"""
