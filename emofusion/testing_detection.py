"""A tiny random person detector, offline: YOLOS (a plain ViT, no timm, no torchvision) from a config.

It lets the tests and benchmarks run the pipeline's `detect=True` path through transformers'
real object-detection pipeline. Its class head is biased towards "person" so that random weights
still produce person boxes (of arbitrary places); it finds nothing real.

>>> from emofusion.testing_detection import tiny_person_detector
>>> model, image_processor = tiny_person_detector()
>>> model.config.id2label[1]
'person'
"""

from __future__ import annotations


def tiny_person_detector(image_size: int = 64, num_detection_tokens: int = 4, seed: int = 0):
    """A random `YolosForObjectDetection` with COCO-like labels (1 = person) and its image processor."""
    import torch
    from transformers import YolosConfig, YolosForObjectDetection

    try:  # the PIL implementation, without the fallback warning where torchvision is absent
        from transformers import YolosImageProcessorPil as YolosImageProcessor
    except ImportError:
        from transformers import YolosImageProcessor

    config = YolosConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=[image_size, image_size],
        patch_size=16,
        num_detection_tokens=num_detection_tokens,
        id2label={0: "N/A", 1: "person", 2: "bicycle", 3: "car"},
    )
    torch.manual_seed(seed)
    model = YolosForObjectDetection(config).eval()
    with torch.no_grad():
        # Make "person" the confident class of every detection token (index 1; the last logit is "no object").
        last = model.class_labels_classifier.layers[-1]
        last.bias.zero_()
        last.bias[1] = 6.0
        # Distinct detection tokens give distinct boxes; a negative size bias keeps them person-sized.
        model.vit.embeddings.detection_tokens.normal_(0.0, 1.0)
        for layer in model.bbox_predictor.layers:
            layer.weight.normal_(0.0, 1.0 / layer.in_features**0.5)
        model.bbox_predictor.layers[-1].bias.copy_(torch.tensor([0.0, 0.0, -0.5, 0.0]))
    image_processor = YolosImageProcessor(size={"shortest_edge": image_size, "longest_edge": image_size})
    return model, image_processor
