// Tiny ONNX models built by the tests themselves (no download): the few messages of ONNX's onnx.proto
// that a model needs, as a protobufjs JSON descriptor (field numbers as in onnx/onnx.proto), and builders
// for the models the accelerator and the onnx embedder tests run. Plus a WordPiece tokenizer.json in the
// shape of all-MiniLM-L6-v2's, small enough to read.
import protobuf from 'protobufjs';

const onnxDescriptor = {
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: { type: 'int64', id: 1 },
            producerName: { type: 'string', id: 2 },
            graph: { type: 'GraphProto', id: 7 },
            opsetImport: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 },
          },
        },
        OperatorSetIdProto: { fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } } },
        GraphProto: {
          fields: {
            node: { rule: 'repeated', type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: 'repeated', type: 'TensorProto', id: 5 },
            input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
            output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: 'repeated', type: 'string', id: 1 },
            output: { rule: 'repeated', type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            opType: { type: 'string', id: 4 },
            attribute: { rule: 'repeated', type: 'AttributeProto', id: 5 },
          },
        },
        AttributeProto: {
          fields: {
            name: { type: 'string', id: 1 },
            f: { type: 'float', id: 2 },
            i: { type: 'int64', id: 3 },
            ints: { rule: 'repeated', type: 'int64', id: 8 },
            type: { type: 'int32', id: 20 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: 'repeated', type: 'int64', id: 1 },
            dataType: { type: 'int32', id: 2 },
            floatData: { rule: 'repeated', type: 'float', id: 4, options: { packed: true } },
            int64Data: { rule: 'repeated', type: 'int64', id: 7, options: { packed: true } },
            name: { type: 'string', id: 8 },
          },
        },
        ValueInfoProto: { fields: { name: { type: 'string', id: 1 }, type: { type: 'TypeProto', id: 2 } } },
        TypeProto: {
          fields: { tensorType: { type: 'Tensor', id: 1 } },
          nested: { Tensor: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } } },
        },
        TensorShapeProto: {
          fields: { dim: { rule: 'repeated', type: 'Dimension', id: 1 } },
          nested: { Dimension: { fields: { dimValue: { type: 'int64', id: 1 }, dimParam: { type: 'string', id: 2 } }, oneofs: { value: { oneof: ['dimValue', 'dimParam'] } } } },
        },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(onnxDescriptor);
const ModelProto = root.lookupType('onnx.ModelProto');

/** onnx.TensorProto.DataType */
export const FLOAT = 1;
export const INT64 = 7;
const ATTR_INT = 2;
const ATTR_INTS = 7;

type Dim = number | string;

function valueInfo(name: string, elemType: number, dims: Dim[]) {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function floatTensor(name: string, dims: number[], values: number[]) {
  return { name, dims, dataType: FLOAT, floatData: values };
}

interface GraphSpec {
  nodes: { op: string; inputs: string[]; outputs: string[]; attributes?: { name: string; i?: number; ints?: number[] }[] }[];
  inputs: ReturnType<typeof valueInfo>[];
  outputs: ReturnType<typeof valueInfo>[];
  initializers?: ReturnType<typeof floatTensor>[];
}

function encodeModel(spec: GraphSpec, opset = 13): Uint8Array {
  const message = ModelProto.fromObject({
    irVersion: 7,
    producerName: 'autobot-tests',
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: 'g',
      node: spec.nodes.map((n, i) => ({
        name: `n${i}`,
        opType: n.op,
        input: n.inputs,
        output: n.outputs,
        attribute: (n.attributes ?? []).map((a) => (a.ints ? { name: a.name, ints: a.ints, type: ATTR_INTS } : { name: a.name, i: a.i, type: ATTR_INT })),
      })),
      initializer: spec.initializers ?? [],
      input: spec.inputs,
      output: spec.outputs,
    },
  });
  return ModelProto.encode(message).finish();
}

/** `y = x * scale + bias` over a float32 tensor `x` of shape [n, width]. */
export function affineModel(opts: { width: number; scale: number; bias: number }): Uint8Array {
  return encodeModel({
    nodes: [
      { op: 'Mul', inputs: ['x', 'scale'], outputs: ['scaled'] },
      { op: 'Add', inputs: ['scaled', 'bias'], outputs: ['y'] },
    ],
    inputs: [valueInfo('x', FLOAT, ['n', opts.width])],
    outputs: [valueInfo('y', FLOAT, ['n', opts.width])],
    initializers: [floatTensor('scale', [1], [opts.scale]), floatTensor('bias', [1], [opts.bias])],
  });
}

/**
 * A token-embedding "transformer" with the inputs and output of all-MiniLM-L6-v2's ONNX export:
 * `last_hidden_state[b, s] = table[input_ids[b, s]]`. Its attention_mask input is declared (as the real
 * model's is) and unused by the graph; the embedder's mean pooling is what must honour it.
 */
export function tokenEmbeddingModel(table: number[][]): Uint8Array {
  const hidden = table[0]!.length;
  return encodeModel({
    nodes: [
      { op: 'Gather', inputs: ['table', 'input_ids'], outputs: ['last_hidden_state'], attributes: [{ name: 'axis', i: 0 }] },
      // Keeps attention_mask a consumed input, as a real model's is: mask × 0 added to nothing we output.
      { op: 'Identity', inputs: ['attention_mask'], outputs: ['mask_seen'] },
    ],
    inputs: [valueInfo('input_ids', INT64, ['batch', 'sequence']), valueInfo('attention_mask', INT64, ['batch', 'sequence'])],
    outputs: [valueInfo('last_hidden_state', FLOAT, ['batch', 'sequence', hidden]), valueInfo('mask_seen', INT64, ['batch', 'sequence'])],
    initializers: [floatTensor('table', [table.length, hidden], table.flat())],
  });
}

/** A BERT-style WordPiece tokenizer.json (as all-MiniLM-L6-v2 ships) over a small vocabulary. */
export function wordPieceTokenizer(words: readonly string[]): { json: Record<string, unknown>; vocab: Record<string, number> } {
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const vocab: Record<string, number> = {};
  for (const token of [...specials, ...words]) if (!(token in vocab)) vocab[token] = Object.keys(vocab).length;
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
  return { json, vocab };
}
