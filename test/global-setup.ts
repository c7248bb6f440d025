// Filled in by the test-model builder: builds small ONNX models once before the suite.
export default async function setup(): Promise<void> {}
