"""
Makes test/fixtures/tiny-sd-variation: a tiny image-variation pipeline (random weights,
torch.manual_seed(0)) built from the real transformers / diffusers modules, exported to ONNX in the
layout models/README.md ("Image variations") describes, with diffusers' own
StableDiffusionImageVariationPipeline output on a real photo for
test/engine/variation/diffusers-reference.test.ts, and transformers' own numbers for its CLIP side
(preprocessing of two photos, both towers, the tokenizer) for test/engine/variation/clip-reference.test.ts.

How to run it (no internet needed: the local wheel mirror and diffusers' git mirror):

    python3 -m venv /tmp/varref-py
    /tmp/varref-py/bin/pip install --no-index --find-links /opt/pypi/files --find-links /opt/wheels \
        /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl \
        transformers huggingface-hub safetensors regex requests pillow filelock importlib-metadata numpy onnx
    /tmp/varref-py/bin/pip install --no-index --find-links /opt/pypi-more/files --no-deps torchvision==0.28.0   # matches torch 2.13
    npm run models   # models/test/variation/tokenizer: the project's CLIP tokenizer files (models/tokenizer-files.ts)
    mkdir -p /tmp/diffusers-src
    git -C /work/.mirror/huggingface+diffusers/repo archive HEAD src/diffusers | tar -x -C /tmp/diffusers-src
    PYTHONPATH=/tmp/diffusers-src/src /tmp/varref-py/bin/python scripts/variation-reference.py

Made with (also written into reference.json): Python 3.11.7, torch 2.13.0+cpu, transformers 5.17.0,
diffusers 0.40.0.dev0 (git mirror HEAD), onnx 1.23.1, Pillow 12.3.0, numpy 2.4.6, tokenizers 0.23.2,
torchvision 0.28.0+cu130. transformers 5 has two CLIPImageProcessor backends: the PIL one
(CLIPImageProcessorPil, the processor diffusers' pipeline used with transformers 4, and what
transformers 5 falls back to without torchvision) is the reference, used by name; the torchvision one
(transformers 5's default) is compared with it (clip.torchvision_*).

Writes (test/fixtures/tiny-sd-variation/):
  model_index.json                     "_class_name": "StableDiffusionImageVariationPipeline"
  image_encoder/model.onnx             CLIPVisionModelWithProjection: pixel_values [b,3,224,224] -> image_embeds [b,32]
  feature_extractor/preprocessor_config.json   CLIPImageProcessor (shortest edge 224, bicubic, 224 crop)
  text_encoder/model.onnx              CLIPTextModelWithProjection: input_ids -> text_embeds, last_hidden_state (CLIP guidance only)
  (no tokenizer/: the test adds the project's CLIP files, models/test/variation/tokenizer; vocab 49408)
  unet/model.onnx, unet/config.json    sample [b,4,h,w], timestep f32 [1], encoder_hidden_states [b,1,32] -> out_sample
  vae_decoder/, vae_encoder/           optimum's layout: latent_sample -> sample; sample -> latent_parameters
  scheduler/scheduler_config.json      PNDMScheduler, SD 1.x settings (as lambdalabs/sd-image-variations-diffusers)
  reference.json + reference.bin       settings, versions, and a manifest of float32 LE arrays in reference.bin
                                       (read with test/helpers/reference-arrays.ts); "clip" and the clip.*
                                       arrays: transformers' preprocessing of two photos (the PIL backend's
                                       224 x 224 picture as a SHA-256 and per-row sums, the torchvision
                                       backend's as its differences from it), both towers' outputs, Pillow's
                                       resize of a small patch, CLIPTokenizer's ids of five prompts
The output is byte-for-byte reproducible (same versions); README.md there is kept.
Every export uses the wrappers, names and dynamic axes of models/README.md's snippet, with
torch.onnx.export(..., dynamo=False, opset_version=17).
"""
from importlib.metadata import version
import json
import platform
import shutil
import sys
from pathlib import Path
import hashlib

import numpy as np
import onnx
import PIL
import torch
from PIL import Image


def _import_torchvision():
    """For the torchvision-backend comparison (transformers 5's default CLIPImageProcessor). The wheel
    mirror's torchvision is built against CUDA torch: its C ops (detection: nms, roi_align, ...) do not
    load on the CPU build, and its import then fails while registering fake kernels for them, which also
    breaks importing transformers and diffusers. Those ops are unused here; declaring their schemas lets
    the pure-Python transforms import. None when torchvision is not installed."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        return None
    try:
        import torchvision

        return torchvision.__version__
    except Exception:
        pass
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "DEF")
    globals()["_torchvision_stub_ops"] = lib  # keep the definitions alive
    for s in [
        "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
        "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
        "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
        "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, int sampling_ratio, bool aligned) -> Tensor",
        "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)",
        "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
        "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) -> (Tensor, Tensor)",
        "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
        "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) -> (Tensor, Tensor)",
        "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
        "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor",
        "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    ]:
        lib.define(s)
    import torchvision

    return torchvision.__version__


TORCHVISION = _import_torchvision()  # before transformers and diffusers, which import torchvision when it is installed

import diffusers
from diffusers import AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler, StableDiffusionImageVariationPipeline, UNet2DConditionModel
import transformers
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer, CLIPVisionConfig, CLIPVisionModelWithProjection
from transformers.models.clip import CLIPImageProcessorPil

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test" / "fixtures" / "tiny-sd-variation"
PHOTOS = ROOT / "test" / "fixtures" / "photos"
PHOTO = PHOTOS / "chelsea.png"
# The project's CLIP tokenizer files (npm run models), which the tests add to a copy of the folder.
TOKENIZER = ROOT / "models" / "test" / "variation" / "tokenizer"
# SD image variations' feature extractor (lambdalabs/sd-image-variations-diffusers): shortest side to
# 224 (bicubic), a 224 x 224 centre crop; CLIP's rescale, mean and std are the class defaults.
PROCESSOR = dict(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3, do_center_crop=True, do_resize=True)
# The CLIP side's references (clip-reference.test.ts): two photos through the processor and the towers,
# Pillow's Image.resize of a small patch (every filter CLIPImageProcessor may name; up, down, and up in
# one direction while down in the other), and five prompts through the tokenizer and the text tower.
CLIP_PHOTOS = ["chelsea", "coffee"]
RESIZE_PATCH = {"photo": "chelsea", "box": [200, 120, 24, 16], "sizes": [[37, 27], [10, 7], [13, 25]]}  # box: x, y, w, h
RESIZE_FILTERS = [1, 2, 3, 4, 5]  # PIL.Image.Resampling: LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING
PROMPTS = {
    "photo": "realistic HD photograph",
    "house": "a red house",
    "empty": "",
    "punctuation": "Café au lait, naïve -- \"quoted\" & (brackets)!",
    # Over 77 tokens: truncated to 76 + EOS.
    "long": " ".join(["a very long prompt about an intricate detailed landscape with mountains and rivers"] * 8),
}
EMBED = 32  # CLIP projection_dim = the UNet's cross_attention_dim
SIZE = 64  # pixels; the VAE downsamples by 2 (two blocks), so 32 x 32 latents
LATENTS_SEED = 42
CASES = [
    # name, diffusers scheduler class (from the folder's PNDM config), the engine's kind, steps, guidance
    ("ddim_64", DDIMScheduler, "ddim", 4, 3.0),
    ("pndm_64", PNDMScheduler, "pndm", 4, 3.0),
    ("dpmpp_2m_64", DPMSolverMultistepScheduler, "dpmpp_2m", 4, 3.0),
]

torch.manual_seed(0)
torch.set_grad_enabled(False)


def build():
    vision = CLIPVisionModelWithProjection(
        CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=224, patch_size=32, projection_dim=EMBED)
    ).eval()
    text_config = dict(max_position_embeddings=77, projection_dim=EMBED, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    # The text encoder was hidden 2 at first, drawn from this stream here. Over 2 values the final LayerNorm
    # leaves two possible outputs per token, so every prompt had the same text_embeds. Building that one
    # still (and dropping it) keeps the UNet's and VAE's weights, and so diffusers' numbers, as they were.
    CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=49408, hidden_size=2, intermediate_size=4, num_hidden_layers=1, num_attention_heads=1, **text_config))
    # The one exported: seeded on its own, CLIP's full vocabulary so the tokenizer's ids are valid; hidden 4
    # (the token table is 0.8 MB) tells the five prompts' text_embeds apart by 0.14 relative or more.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        text = CLIPTextModelWithProjection(
            CLIPTextConfig(vocab_size=49408, hidden_size=4, intermediate_size=8, num_hidden_layers=2, num_attention_heads=2, **text_config)
        ).eval()
    unet = UNet2DConditionModel(
        sample_size=SIZE // 2, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=EMBED, attention_head_dim=8, norm_num_groups=8,
    ).eval()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=SIZE,
    ).eval()
    # from_config keeps clip_sample (not a PNDM argument) in the config, as SD 1.x's scheduler_config.json has it;
    # DDIMScheduler.from_config(...) would otherwise clip x0 to [-1, 1] (its default clip_sample=True).
    scheduler = PNDMScheduler.from_config(dict(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", set_alpha_to_one=False,
        skip_prk_steps=True, steps_offset=1, clip_sample=False, prediction_type="epsilon", timestep_spacing="leading",
    ))
    processor = CLIPImageProcessorPil(**PROCESSOR)
    return vision, text, unet, vae, scheduler, processor


class Img(torch.nn.Module):  # pixel_values -> image_embeds (models/README.md)
    def __init__(s, m): super().__init__(); s.m = m
    def forward(s, pixel_values): return s.m(pixel_values).image_embeds


class Txt(torch.nn.Module):
    def __init__(s, m): super().__init__(); s.m = m
    def forward(s, input_ids): o = s.m(input_ids); return o.text_embeds, o.last_hidden_state


class Unet(torch.nn.Module):
    def __init__(s, m): super().__init__(); s.m = m
    def forward(s, sample, timestep, encoder_hidden_states): return s.m(sample, timestep, encoder_hidden_states).sample


class VaeDecoder(torch.nn.Module):  # optimum: latent_sample -> sample (post_quant_conv + decoder)
    def __init__(s, m): super().__init__(); s.m = m
    def forward(s, latent_sample): return s.m.decode(latent_sample).sample


class VaeEncoder(torch.nn.Module):  # optimum: sample -> latent_parameters (mean and logvar, 8 channels)
    def __init__(s, m): super().__init__(); s.m = m
    def forward(s, sample): return s.m.encode(sample).latent_dist.parameters


def export(module, args, path: Path, input_names, output_names, dynamic_axes):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    if m.ir_version > 13:
        raise SystemExit(f"{path}: IR version {m.ir_version}; onnxruntime 1.29 reads up to 13")
    return {"ir_version": m.ir_version, "opset": max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), "bytes": path.stat().st_size}


def clip_references(put, vision, text, processor, image_embeds):
    """transformers' own numbers for the CLIP side (clip-reference.test.ts): the "clip" entry of
    reference.json; its arrays go through put() as clip.*."""
    from transformers.models.clip.image_processing_clip import CLIPImageProcessor  # transformers 5's default: the torchvision backend

    tv_proc = CLIPImageProcessor(**PROCESSOR)
    mean = np.array(processor.image_mean, dtype=np.float64)[:, None, None]
    std = np.array(processor.image_std, dtype=np.float64)[:, None, None]

    def levels(pixel_values, label):
        """The uint8 picture [3, H, W] behind pixel_values; checks pixel_values are exactly its rescale + normalise."""
        pv = np.asarray(pixel_values, dtype=np.float64)
        q = np.round((pv * std + mean) * 255)
        assert q.min() >= 0 and q.max() <= 255, label
        err = float(np.abs(((q / 255 - mean) / std).astype(np.float32) - pv).max())
        assert err < 1e-5, f"{label}: pixel_values are not a rescaled uint8 picture (max error {err})"
        return q.astype(np.uint8), err

    photos = {}
    for name in CLIP_PHOTOS:
        im = Image.open(PHOTOS / f"{name}.png").convert("RGB")
        pv = processor(images=im, return_tensors="pt").pixel_values  # [1, 3, 224, 224]
        q, err = levels(pv[0].numpy(), f"{name} (PIL)")
        emb = vision(pixel_values=pv).image_embeds
        if name == PHOTO.stem:
            assert torch.equal(emb, image_embeds), "clip.image_embeds.chelsea should be the pipeline's image_embeds"
        put(f"clip.image_embeds.{name}", emb)
        # The PIL backend's picture (150528 values) is kept as its SHA-256 (HWC bytes, as the engine's
        # RawImage) and, to say where a difference is, the sum of each row of each channel ([3, 224]).
        put(f"clip.pil_row_sums.{name}", q.astype(np.float64).sum(axis=2))
        tv = tv_proc(images=im, return_tensors="pt").pixel_values
        tq, _ = levels(tv[0].numpy(), f"{name} (torchvision)")
        delta = (tq.astype(np.int16) - q.astype(np.int16)).reshape(-1)
        where = np.flatnonzero(delta)
        # Sparse: (index into the [3, 224, 224] levels, torchvision minus PIL) for each value that differs.
        put(f"clip.torchvision_minus_pil.{name}", np.stack([where, delta[where]], axis=1).reshape(-1, 2))
        tv_emb = vision(pixel_values=tv).image_embeds
        put(f"clip.image_embeds_torchvision.{name}", tv_emb)
        d = np.abs(delta)
        photos[name] = {
            "photo": f"test/fixtures/photos/{name}.png", "size": list(im.size), "pixel_values_shape": list(pv.shape),
            "pixel_values_vs_levels_max_abs": err,
            "pil_sha256": hashlib.sha256(np.ascontiguousarray(q.transpose(1, 2, 0)).tobytes()).hexdigest(),
            "torchvision_vs_pil": {
                "max_levels": int(d.max()), "values_differing": int((d > 0).sum()),
                "image_embeds_rel": float((tv_emb - emb).abs().max() / emb.abs().max()),
            },
        }

    patch = np.asarray(Image.open(PHOTOS / f"{RESIZE_PATCH['photo']}.png").convert("RGB"))
    x0, y0, pw, ph = RESIZE_PATCH["box"]
    patch = Image.fromarray(patch[y0 : y0 + ph, x0 : x0 + pw])
    for f in RESIZE_FILTERS:
        for w, h in RESIZE_PATCH["sizes"]:
            put(f"clip.pil_resize.{f}.{w}x{h}", np.asarray(patch.resize((w, h), resample=f)))  # [h, w, 3] uint8 as float32

    tok = CLIPTokenizer.from_pretrained(str(TOKENIZER))
    prompts = {}
    for key, prompt in PROMPTS.items():
        ids = tok(prompt, padding="max_length", max_length=77, truncation=True).input_ids
        o = text(input_ids=torch.tensor([ids], dtype=torch.int64))
        put(f"clip.text_embeds.{key}", o.text_embeds)
        put(f"clip.last_hidden_state.{key}", o.last_hidden_state)
        prompts[key] = {"text": prompt, "input_ids": ids}
    return {
        "note": "transformers' CLIP side. photos: CLIPImageProcessorPil's 224 x 224 picture (pil_sha256 of its HWC uint8 bytes; "
        "clip.pil_row_sums.<photo> [3, 224]: each channel row's sum of levels); pixel_values are that picture rescaled and normalised "
        "(pixel_values_vs_levels_max_abs). clip.torchvision_minus_pil.<photo>: (index into [3, 224, 224], delta) pairs where transformers' "
        "torchvision backend differs. clip.image_embeds[_torchvision].<photo>: the image encoder on either backend's pixel_values. "
        "pil_resize: Image.resize of the patch, arrays clip.pil_resize.<filter>.<w>x<h> [h, w, 3]. prompts: CLIPTokenizer "
        "(models/test/variation/tokenizer; padding max_length 77, truncation) ids; clip.text_embeds.<key>, clip.last_hidden_state.<key>.",
        "processor": {"class": type(processor).__name__, "torchvision_class": type(tv_proc).__name__},
        "photos": photos,
        "pil_resize": {**RESIZE_PATCH, "filters": RESIZE_FILTERS},
        "prompts": prompts,
    }


def main():
    # Before anything in the folder is removed.
    if TORCHVISION is None:
        raise SystemExit("torchvision is needed for the torchvision-backend reference (clip.torchvision_*): "
                         "/tmp/varref-py/bin/pip install --no-index --find-links /opt/pypi-more/files --no-deps torchvision==0.28.0")
    if not (TOKENIZER / "vocab.json").is_file():
        raise SystemExit(f"{TOKENIZER} has no CLIP tokenizer files: run `npm run models` first")
    OUT.mkdir(parents=True, exist_ok=True)
    for entry in OUT.iterdir():  # everything but the hand-written README.md is made here
        if entry.name != "README.md":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    vision, text, unet, vae, scheduler, processor = build()

    onnx_info = {
        "image_encoder": export(Img(vision), (torch.randn(1, 3, 224, 224),), OUT / "image_encoder" / "model.onnx", ["pixel_values"], ["image_embeds"], {"pixel_values": {0: "batch"}}),
        "text_encoder": export(Txt(text), (torch.ones(1, 77, dtype=torch.int64),), OUT / "text_encoder" / "model.onnx", ["input_ids"], ["text_embeds", "last_hidden_state"], {"input_ids": {0: "batch"}}),
        "unet": export(
            Unet(unet), (torch.randn(2, 4, SIZE // 2, SIZE // 2), torch.tensor([999.0]), torch.randn(2, 1, EMBED)), OUT / "unet" / "model.onnx",
            ["sample", "timestep", "encoder_hidden_states"], ["out_sample"], {"sample": {0: "batch", 2: "height", 3: "width"}, "encoder_hidden_states": {0: "batch"}},
        ),
        "vae_decoder": export(
            VaeDecoder(vae), (torch.randn(1, 4, SIZE // 2, SIZE // 2),), OUT / "vae_decoder" / "model.onnx", ["latent_sample"], ["sample"],
            {"latent_sample": {0: "batch", 2: "height", 3: "width"}, "sample": {0: "batch", 2: "height", 3: "width"}},
        ),
        "vae_encoder": export(
            VaeEncoder(vae), (torch.randn(1, 3, SIZE, SIZE),), OUT / "vae_encoder" / "model.onnx", ["sample"], ["latent_parameters"],
            {"sample": {0: "batch", 2: "height", 3: "width"}, "latent_parameters": {0: "batch", 2: "height", 3: "width"}},
        ),
    }
    unet.save_config(OUT / "unet")
    vae.save_config(OUT / "vae_decoder")
    vae.save_config(OUT / "vae_encoder")
    text.config.save_pretrained(OUT / "text_encoder")
    vision.config.save_pretrained(OUT / "image_encoder")
    scheduler.save_pretrained(OUT / "scheduler")
    processor.save_pretrained(OUT / "feature_extractor")
    # No tokenizer/: CLIP's files (1.6 MB) are the project's own; the test adds models/test/variation's.
    (OUT / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionImageVariationPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }, indent=2) + "\n")

    arrays: dict = {}
    chunks: list = []
    offset = 0

    def put(name, t):
        nonlocal offset
        a = np.ascontiguousarray((t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)).astype("<f4"))
        arrays[name] = {"shape": list(a.shape), "offset": offset, "length": int(a.size)}
        chunks.append(a.reshape(-1))
        offset += a.size

    photo = Image.open(PHOTO).convert("RGB")
    pixel_values = processor(images=photo, return_tensors="pt").pixel_values
    image_embeds = vision(pixel_values).image_embeds  # [1, 32]
    put("image_embeds", image_embeds)

    gen = torch.Generator().manual_seed(LATENTS_SEED)
    input_latents = torch.randn((1, 4, SIZE // 2, SIZE // 2), generator=gen, dtype=torch.float32)
    put("input_latents", input_latents)

    # One UNet call on the pipeline's first-step inputs (uncond zeros first, as diffusers batches them), for debugging.
    hidden = torch.cat([torch.zeros_like(image_embeds), image_embeds]).unsqueeze(1)
    sample = torch.cat([input_latents] * 2)
    t0 = torch.tensor(751.0)  # the first DDIM/PNDM timestep at 4 steps
    put("io.unet.sample", sample)
    put("io.unet.timestep", t0.reshape(1))
    put("io.unet.encoder_hidden_states", hidden)
    put("io.unet.out_sample", unet(sample, t0, hidden).sample)
    z = torch.randn((1, 4, SIZE // 2, SIZE // 2), generator=gen)
    put("io.vae_decoder.latent_sample", z)
    put("io.vae_decoder.sample", vae.decode(z).sample)

    cases = []
    for name, cls, kind, steps, guidance in CASES:
        sched = cls.from_config(scheduler.config)
        pipe = StableDiffusionImageVariationPipeline(vae=vae, image_encoder=vision, unet=unet, scheduler=sched, safety_checker=None, feature_extractor=processor, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        # Every scheduler step's output (the pipeline's callback skips PNDM's warm-up step).
        per_step = []
        step = sched.step

        def recording_step(noise_pred, t, latents, *args, **kwargs):
            out = step(noise_pred, t, latents, *args, **kwargs)
            per_step.append((int(t), out.prev_sample.clone()))
            return out

        sched.step = recording_step
        out = pipe(
            photo, height=SIZE, width=SIZE, num_inference_steps=steps, guidance_scale=guidance, latents=input_latents.clone(), output_type="np",
        ).images  # [1, H, W, 3] floats in [0, 1]: (vae_out / 2 + 0.5).clamp(0, 1)
        assert [t for t, _ in per_step] == [int(t) for t in sched.timesteps]
        final = per_step[-1][1]
        put(f"{name}.final_latents", final)
        put(f"{name}.image", out)
        for i, (_, lat) in enumerate(per_step):
            put(f"{name}.step_latents.{i}", lat)
        clamped = float(((out <= 0) | (out >= 1)).mean())
        cases.append({
            "name": name, "photo": PHOTO.name, "scheduler": cls.__name__, "engine_scheduler": kind, "num_inference_steps": steps,
            "guidance_scale": guidance, "height": SIZE, "width": SIZE, "init_noise_sigma": float(sched.init_noise_sigma),
            "timesteps": [t for t, _ in per_step], "latents_seed": LATENTS_SEED,
            "image_std": float(out.std()), "image_clamped_fraction": clamped,
        })
        print(f"{name}: timesteps {[t for t, _ in per_step]}, image mean {out.mean():.4f} std {out.std():.4f}, clamped {clamped:.4f}")

    clip = clip_references(put, vision, text, processor, image_embeds)

    with open(OUT / "reference.bin", "wb") as f:
        for c in chunks:
            f.write(c.tobytes())
    meta = {
        "note": "Made by scripts/variation-reference.py; arrays are float32 LE in reference.bin at offset*4 (test/helpers/reference-arrays.ts). "
        "image_embeds: diffusers' CLIPImageProcessor (PIL backend) + image encoder on the photo. "
        "input_latents: what was passed as the pipeline's latents= (before init_noise_sigma). "
        "<case>.image: NHWC floats in [0,1], (vae_out / 2 + 0.5).clamp(0, 1). <case>.step_latents.i: latents after the scheduler step at timesteps[i] (PNDM: 5 timesteps for 4 steps, its first repeated). "
        "io.unet: one UNet call (batch [uncond zeros, cond]) at timestep 751; io.vae_decoder: one decode (latent_sample is already divided by scaling_factor).",
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__, "diffusers": diffusers.__version__,
            "onnx": onnx.__version__, "pillow": PIL.__version__, "numpy": np.__version__, "huggingface_hub": version("huggingface-hub"),
            "tokenizers": version("tokenizers"), "torchvision": TORCHVISION,
        },
        "onnx": onnx_info,
        "processor": type(processor).__name__,
        "cases": cases,
        "clip": clip,
        "arrays": arrays,
    }
    (OUT / "reference.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{len(arrays)} arrays, {offset} values; onnx {json.dumps(onnx_info)}")


if __name__ == "__main__":
    sys.exit(main())
