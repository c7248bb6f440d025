"""
Makes test/fixtures/tiny-sd-variation: a tiny image-variation pipeline (random weights,
torch.manual_seed(0)) built from the real transformers / diffusers modules, exported to ONNX in the
layout models/README.md ("Image variations") describes, with diffusers' own
StableDiffusionImageVariationPipeline output on a real photo for
test/engine/variation/diffusers-reference.test.ts.

How to run it (no internet needed: the local wheel mirror and diffusers' git mirror):

    python3 -m venv /tmp/varref-py
    /tmp/varref-py/bin/pip install --no-index --find-links /opt/pypi/files --find-links /opt/wheels \
        /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl \
        transformers huggingface-hub safetensors regex requests pillow filelock importlib-metadata numpy onnx
    mkdir -p /tmp/diffusers-src
    git -C /work/.mirror/huggingface+diffusers/repo archive HEAD src/diffusers | tar -x -C /tmp/diffusers-src
    PYTHONPATH=/tmp/diffusers-src/src /tmp/varref-py/bin/python scripts/variation-reference.py

Made with (also written into reference.json): Python 3.11.7, torch 2.13.0+cpu, transformers 5.17.0,
diffusers 0.40.0.dev0 (git mirror HEAD), onnx 1.23.1, Pillow 12.3.0, numpy 2.4.6. transformers 5's
CLIPImageProcessor falls back to its PIL backend (CLIPImageProcessorPil) without torchvision, which
is the processor diffusers' pipeline used with transformers 4; the script uses that class by name.

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
                                       (read with test/helpers/reference-arrays.ts)
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

import numpy as np
import onnx
import PIL
import torch
from PIL import Image

import diffusers
from diffusers import AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler, StableDiffusionImageVariationPipeline, UNet2DConditionModel
import transformers
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPVisionConfig, CLIPVisionModelWithProjection
from transformers.models.clip import CLIPImageProcessorPil

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test" / "fixtures" / "tiny-sd-variation"
PHOTO = ROOT / "test" / "fixtures" / "photos" / "chelsea.png"
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
    # CLIP's full vocabulary so the tokenizer's ids are valid; hidden 2 keeps the token table at 0.4 MB.
    text = CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=49408, hidden_size=2, intermediate_size=4, num_hidden_layers=1, num_attention_heads=1, max_position_embeddings=77,
            projection_dim=EMBED, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
        )
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
    processor = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3, do_center_crop=True, do_resize=True)
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


def main():
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
        },
        "onnx": onnx_info,
        "processor": type(processor).__name__,
        "cases": cases,
        "arrays": arrays,
    }
    (OUT / "reference.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{len(arrays)} arrays, {offset} values; onnx {json.dumps(onnx_info)}")


if __name__ == "__main__":
    sys.exit(main())
