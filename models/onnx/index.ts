// Public entry point for writing ONNX models.
export {
  GraphBuilder,
  saveModel,
  dtypeCode,
  tensorBytes,
  type AttrValue,
  type BuiltModel,
  type Dim,
  type DType,
  type OpOptions,
  type TensorData,
  type TensorSpec,
  type ToModelOptions,
} from './graph-builder.ts';
export { AttributeType, DataLocation, DataType, encodeModel, type ModelProto } from './proto.ts';
