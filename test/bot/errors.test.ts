// bot/errors.ts: what a member reads when something is refused.
import { describe, expect, it } from 'vitest';
import { BudgetExceededError, FarmError, JobParamsError, NoCapableWorkerError, parseJobParams } from '../../farm/index.ts';
import { UserInputError, userMessage } from '../../bot/errors.ts';
import { OPTION_NAMES, toJobParamsInput } from '../../bot/render-options.ts';

function refusalOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a refusal');
}

describe('userMessage', () => {
  it('a JobParamsError lists every issue, naming the Discord options the member can change', () => {
    const err = refusalOf(() => parseJobParams('blend', toJobParamsInput(['', 'a dog'], { duration: 1000, depth: 2 })));
    expect(err).toBeInstanceOf(JobParamsError);
    const text = userMessage(err, () => {}, { ...OPTION_NAMES, 'prompt 1': 'from', 'prompt 2': 'to' });
    expect(text).toMatch(/^That request can't be rendered: /);
    expect(text).toMatch(/`from` must not be empty/);
    expect(text).toMatch(/`duration` must be a number between/);
    expect(text).toMatch(/`depth` must be a number between/);
    // Without names, the farm's own words.
    expect(userMessage(err, () => {})).toMatch(/prompt 1 must not be empty.*durationSeconds must be/);
  });

  it('the farm’s refusals and the bot’s own input errors are shown as they are', () => {
    expect(userMessage(new UserInputError('Unknown size "huge".'))).toBe('Unknown size "huge".');
    expect(userMessage(new FarmError('invalid_state', 'Job 3 is running.'))).toBe('Job 3 is running.');
    expect(userMessage(new FarmError('too_many_active_jobs', 'You already have 3 jobs.'))).toBe('You already have 3 jobs.');
    expect(userMessage(new FarmError('no_capable_worker', 'No render worker is online.'))).toBe(
      "No render worker is online right now, so nothing would start. Try again in a few minutes, or tell the farm's operator if it lasts.",
    );
    expect(userMessage(new FarmError('no_capable_worker', 'None of the 2 online workers can do it.'))).toBe("No render worker online can take this job right now. Try again later, or ask the farm's operator.");
  });

  describe('no worker can take the job: the command’s terms, the operator’s text kept for logs and the CLI', () => {
    const demo = (abilities: string[], maxPixels = 4096 * 4096, upscalers: string[] = []) => ({ capabilities: { maxPixels, models: ['demo'], modelAbilities: { demo: abilities }, upscalers } });
    const blendNames = { ...OPTION_NAMES, 'image-1': 'from_image', 'image-2': 'to_image', 'inpaint-image': 'image', 'inpaint-mask': 'mask' };

    it('an extension of a movie with pictures', () => {
      const err = new NoCapableWorkerError({ kind: 'extend', model: 'demo', pixels: 262_144, ability: 'picture' }, [demo(['text'])]);
      expect([err.kind, err.ability, err.shortfall]).toEqual(['extend', 'picture', 'ability']);
      expect(err.message).toMatch(/^None of the 1 online worker can use model "demo" to continue this movie/);
      expect(userMessage(err)).toBe(
        "This farm can't extend this video right now: it starts or ends at a picture, and no render worker online has a model that can continue from one. Make a new /movie instead, or ask the farm's operator.",
      );
    });

    it('a re-roll (no options to name): what the farm cannot do, and whom to ask', () => {
      const pictures = new NoCapableWorkerError({ kind: 'reroll', model: 'demo', pixels: 262_144, ability: 'picture' }, [demo(['text'])]);
      expect(userMessage(pictures)).toBe("This farm can't start or end a video at a picture right now: no render worker online has a model that can. Try again later, or ask the farm's operator.");
      const text = new NoCapableWorkerError({ kind: 'reroll', model: 'demo', pixels: 262_144, ability: 'text' }, [demo(['inpaint'])]);
      expect(userMessage(text)).toBe("This farm can't render transitions from text right now: no render worker online has a model that can. Try again later, or ask the farm's operator.");
      const size = new NoCapableWorkerError({ kind: 'reroll', model: 'demo', pixels: 393_216, ability: 'text' }, [demo(['text'], 262_144)]);
      expect(size.shortfall).toBe('size');
      expect(userMessage(size)).toBe("No render worker online can render a video this size right now. Try again later, or ask the farm's operator.");
    });

    it('no worker has the model at all: no advice that would be refused in turn (leaving pictures out, a new /movie)', () => {
      const other = { capabilities: { maxPixels: 4096 * 4096, models: ['some-other-model'], modelAbilities: { 'some-other-model': ['text', 'picture'] }, upscalers: [] } };
      const blend = new NoCapableWorkerError({ kind: 'blend', model: 'demo', pixels: 262_144, ability: 'picture' }, [other]);
      expect(blend.shortfall).toBe('model');
      expect(userMessage(blend, () => {}, blendNames)).toBe("This farm can't render this right now: no render worker online has its model. Try again later, or ask the farm's operator.");
      const extend = new NoCapableWorkerError({ kind: 'extend', model: 'demo', pixels: 262_144, ability: 'picture' }, [other]);
      expect(userMessage(extend)).toBe("This farm can't render this right now: no render worker online has its model. Try again later, or ask the farm's operator.");
      const text = new NoCapableWorkerError({ kind: 'movie', model: 'demo', pixels: 262_144, ability: 'text' }, [other]);
      expect(userMessage(text)).toBe("This farm can't render this right now: no render worker online has its model. Try again later, or ask the farm's operator.");
    });

    it('a model the member picked that no worker has: named, with where to pick one; the default model keeps its text', () => {
      const picked = new NoCapableWorkerError({ kind: 'blend', model: 'sdxl-turbo', pixels: 262_144, ability: 'text' }, [demo(['text'])]);
      expect(picked.shortfall).toBe('model');
      expect(userMessage(picked, () => {}, blendNames)).toBe(
        "No render worker online has the model `sdxl-turbo` right now, so nothing was queued: pick one from the list the `model` option offers, or ask the farm's operator.",
      );
      // Without a model option (a re-roll, whose model is its parent's) and for the default model: as before.
      expect(userMessage(picked)).toBe("This farm can't render this right now: no render worker online has its model. Try again later, or ask the farm's operator.");
      const other = { capabilities: { maxPixels: 4096 * 4096, models: ['sdxl-turbo'], upscalers: [] } };
      const byDefault = new NoCapableWorkerError({ kind: 'movie', model: 'demo', pixels: 262_144, ability: 'text' }, [other]);
      expect(userMessage(byDefault, () => {}, blendNames)).toBe("This farm can't render this right now: no render worker online has its model. Try again later, or ask the farm's operator.");
    });

    it('a model the member picked that cannot do the job: that model can’t, not the farm; the default model keeps its text', () => {
      const farmModels = { capabilities: { maxPixels: 4096 * 4096, models: ['demo', 'variation', 'sdxl-turbo'], modelAbilities: { demo: ['text', 'picture'], variation: ['variation'], 'sdxl-turbo': ['text'] }, upscalers: [] } };
      // /blend model:variation: the default model could render it from text.
      const variation = new NoCapableWorkerError({ kind: 'blend', model: 'variation', pixels: 262_144, ability: 'text' }, [farmModels]);
      expect(variation.shortfall).toBe('ability');
      expect(userMessage(variation, () => {}, blendNames)).toBe("The model `variation` can't render transitions from text: pick another from the list the `model` option offers, or leave `model` out.");
      // /blend model:sdxl-turbo with an inpainting picture, or a picture to start at.
      const inpaint = new NoCapableWorkerError({ kind: 'blend', model: 'sdxl-turbo', pixels: 262_144, ability: 'inpaint' }, [farmModels]);
      expect(inpaint.shortfall).toBe('ability');
      expect(userMessage(inpaint, () => {}, blendNames)).toBe("The model `sdxl-turbo` can't inpaint pictures: pick another from the list the `model` option offers, or leave `model` out.");
      const picture = new NoCapableWorkerError({ kind: 'blend', model: 'sdxl-turbo', pixels: 262_144, ability: 'picture' }, [farmModels]);
      expect(userMessage(picture, () => {}, blendNames)).toBe(
        "The model `sdxl-turbo` can't start or end a video at a picture: pick another from the list the `model` option offers, or leave `model` out.",
      );
      // No model option (a re-roll keeps its parent's model): the farm's texts, as before.
      expect(userMessage(picture)).toBe("This farm can't start or end a video at a picture right now: no render worker online has a model that can. Try again later, or ask the farm's operator.");
      // The default models: the farm can't, whatever the member typed.
      const textOnly = { capabilities: { maxPixels: 4096 * 4096, models: ['demo', 'sdxl-turbo'], modelAbilities: { demo: ['text'], 'sdxl-turbo': ['text'] }, upscalers: [] } };
      const byDefault = new NoCapableWorkerError({ kind: 'blend', model: 'demo', pixels: 262_144, ability: 'picture' }, [textOnly]);
      expect(userMessage(byDefault, () => {}, blendNames)).toBe(
        "This farm can't start or end a video at a picture right now: no render worker online has a model that can. Leave `from_image` and `to_image` out, or ask the farm's operator.",
      );
      const inpaintDefault = new NoCapableWorkerError({ kind: 'blend', model: 'inpaint', pixels: 262_144, ability: 'inpaint' }, [{ capabilities: { ...textOnly.capabilities, models: ['inpaint'], modelAbilities: { inpaint: ['text'] } } }]);
      expect(inpaintDefault.shortfall).toBe('ability');
      expect(userMessage(inpaintDefault, () => {}, blendNames)).toBe("This farm can't inpaint pictures right now: no render worker online has a model that can. Leave `image` and `mask` out, or ask the farm's operator.");
    });

    it('a /blend with pictures: the options to leave out; the operator’s message is unchanged', () => {
      const err = new NoCapableWorkerError({ kind: 'blend', model: 'demo', pixels: 262_144, ability: 'picture' }, [demo(['text'])]);
      expect(err.message).toBe(
        'None of the 1 online worker can use model "demo" to start or end at a picture (its model has no VAE encoder); leave the pictures out, or ask the operator for a worker with such a model (BLENDFARM_INPAINT_MODEL_DIR, BLENDFARM_VARIATION_MODEL_DIR).',
      );
      expect(userMessage(err, () => {}, blendNames)).toBe(
        "This farm can't start or end a video at a picture right now: no render worker online has a model that can. Leave `from_image` and `to_image` out, or ask the farm's operator.",
      );
      const size = new NoCapableWorkerError({ kind: 'blend', model: 'demo', pixels: 393_216, ability: 'text' }, [demo(['text'], 262_144)]);
      expect(userMessage(size, () => {}, blendNames)).toBe("No render worker online can render this size right now: pick a smaller `size`, or ask the farm's operator.");
    });

    it('an upscale: not offered by any worker, or not this one', () => {
      const none = new NoCapableWorkerError({ kind: 'upscale', model: 'demo', pixels: 4_194_304, upscaleFactor: 4 }, [demo(['text'])]);
      expect(none.shortfall).toBe('no_upscaler');
      expect(userMessage(none)).toBe("Upscaling isn't available on this farm right now: no render worker online can upscale. Try again later, or ask the farm's operator.");
      const other = new NoCapableWorkerError({ kind: 'upscale', model: 'demo', pixels: 4_194_304, upscaleFactor: 4 }, [demo(['text'], 1_000_000, ['esrgan-slim'])]);
      expect(other.shortfall).toBe('upscaler');
      expect(userMessage(other)).toBe("This farm can't upscale this video 4× right now: no render worker online can. Try again later, or ask the farm's operator.");
    });

    it('no worker at all', () => {
      const err = new NoCapableWorkerError({ kind: 'movie', model: 'demo', pixels: 262_144, ability: 'text' }, []);
      expect(err.shortfall).toBe('no_worker');
      expect(err.message).toBe('No render worker is online; start one with `npm run worker` (or try again later).');
      expect(userMessage(err)).toBe("No render worker is online right now, so nothing would start. Try again in a few minutes, or tell the farm's operator if it lasts.");
    });
  });

  it('a budget refusal shows its refill time as a Discord timestamp (each reader’s own clock), never as an ISO string', () => {
    const budget = new BudgetExceededError(30, 5.04, new Date('2024-01-02T00:00:00Z'), 600);
    const text = userMessage(budget);
    expect(text).toBe(
      'This job needs about 30 GPU-seconds but you have 5 GPU-seconds left; your budget tops up to 600 GPU-seconds <t:1704153600:R> (<t:1704153600:f>); or ask for a smaller, shorter or lower-quality render.',
    );
    expect(text).not.toContain('2024-01-02T');
  });

  it('anything else: a reference for the user, the details in the log', () => {
    const logged: string[] = [];
    const text = userMessage(new Error('connection reset'), (m) => logged.push(m));
    const ref = /reference `([0-9a-f]{8})`/.exec(text)?.[1];
    expect(ref).toBeDefined();
    expect(text).not.toMatch(/connection reset/);
    expect(logged.join()).toMatch(new RegExp(`ref ${ref}.*connection reset`));
  });
});
