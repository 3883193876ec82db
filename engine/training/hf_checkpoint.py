"""The built-in model as a Hugging Face checkpoint folder: `config.json` (Dream family, the keys the engine's
converter reads: engine/convert/families.ts, specialTokens.ts), `model.safetensors` (float32, written and
read here: the format is an 8-byte little-endian header length, a JSON header, then the raw tensors), and
`tokenizer.json`.
"""
import json
import os
import struct

import numpy as np
import torch

from model import DreamConfig, DreamModel

CONFIG_FILE = 'config.json'
WEIGHTS_FILE = 'model.safetensors'


def hf_config(config: DreamConfig, special_ids):
    return {
        'architectures': ['DreamModel'],
        'model_type': 'Dream',
        'hidden_size': config.hidden_size,
        'intermediate_size': config.intermediate_size,
        'num_hidden_layers': config.num_hidden_layers,
        'num_attention_heads': config.num_attention_heads,
        'num_key_value_heads': config.num_key_value_heads,
        'head_dim': config.head_dim,
        'hidden_act': 'silu',
        'vocab_size': config.vocab_size,
        'max_position_embeddings': config.max_position_embeddings,
        'rope_theta': config.rope_theta,
        'rope_scaling': None,
        'rms_norm_eps': config.rms_norm_eps,
        'tie_word_embeddings': config.tie_word_embeddings,
        'use_sliding_window': False,
        'attention_dropout': 0.0,
        'initializer_range': config.initializer_range,
        'mask_token_id': special_ids['mask'],
        'eos_token_id': special_ids['eos'],
        'pad_token_id': special_ids['pad'],
        'bos_token_id': None,
        'torch_dtype': 'float32',
    }


def config_from_hf(hf):
    return DreamConfig(
        vocab_size=hf['vocab_size'], hidden_size=hf['hidden_size'], num_hidden_layers=hf['num_hidden_layers'],
        num_attention_heads=hf['num_attention_heads'], num_key_value_heads=hf['num_key_value_heads'],
        head_dim=hf.get('head_dim', hf['hidden_size'] // hf['num_attention_heads']),
        intermediate_size=hf['intermediate_size'], rope_theta=hf['rope_theta'], rms_norm_eps=hf['rms_norm_eps'],
        max_position_embeddings=hf['max_position_embeddings'], tie_word_embeddings=hf['tie_word_embeddings'])


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> float32 torch tensor. Names sorted, data 8-byte aligned as the format recommends."""
    header = {'__metadata__': metadata or {'format': 'pt'}}
    offset = 0
    arrays = []
    for name in sorted(tensors):
        array = tensors[name].detach().to(torch.float32).contiguous().numpy()
        header[name] = {'dtype': 'F32', 'shape': list(array.shape), 'data_offsets': [offset, offset + array.nbytes]}
        offset += array.nbytes
        arrays.append(array)
    encoded = json.dumps(header, separators=(',', ':')).encode('utf-8')
    encoded += b' ' * (-len(encoded) % 8)
    with open(path + '.tmp', 'wb') as f:
        f.write(struct.pack('<Q', len(encoded)))
        f.write(encoded)
        for array in arrays:
            f.write(array.astype('<f4', copy=False).tobytes())
    os.replace(path + '.tmp', path)


def read_safetensors(path):
    with open(path, 'rb') as f:
        (length,) = struct.unpack('<Q', f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == '__metadata__':
            continue
        if entry['dtype'] != 'F32':
            raise ValueError(f'{path}: {name} is {entry["dtype"]}; this reader handles F32 only')
        begin, end = entry['data_offsets']
        tensors[name] = torch.from_numpy(np.frombuffer(data[begin:end], dtype='<f4').reshape(entry['shape']).copy())
    return tensors


def save_checkpoint_folder(folder, model: DreamModel, special_ids, metadata=None):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, CONFIG_FILE), 'w') as f:
        json.dump(hf_config(model.config, special_ids), f, indent=2)
        f.write('\n')
    write_safetensors(os.path.join(folder, WEIGHTS_FILE), model.state_dict(), metadata)


def load_checkpoint_folder(folder):
    with open(os.path.join(folder, CONFIG_FILE)) as f:
        hf = json.load(f)
    model = DreamModel(config_from_hf(hf))
    model.load_state_dict(read_safetensors(os.path.join(folder, WEIGHTS_FILE)))
    model.eval()
    return model, hf
