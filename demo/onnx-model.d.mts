export interface LinearClassifier {
  name: string;
  version: string;
  /** [inputs][classes] */
  weights: number[][];
  bias: number[];
  docString?: string;
}
export declare function linearClassifierOnnx(model: LinearClassifier): Buffer;
