// swift run -c release Example resnet18-5c106cde.pth cat.jpg
import Checkpoint
import Tensors
import Vision

let arguments = CommandLine.arguments
let weights = arguments.count > 1 ? arguments[1] : "resnet18-5c106cde.pth"
let image = arguments.count > 2 ? arguments[2] : "cat.jpg"

let ckpt = try Checkpoint(path: weights)                    // tar, legacy, zip or .swt
print(ckpt.format, ckpt.globals)
let sd = try ckpt.stateDict(stripPrefix: nil)               // finds 'state_dict' / 'model_state_dict' / 'model'
let w = sd["conv1.weight"]!                                 // dtype, shape, strides, storageOffset, storage
let floats = try w.float32()                                // contiguous Float32, converted on demand
let all = try Float32Arena(sd, threads: 2)                  // every tensor in one huge-page allocation
print(w.dtype, w.shape, floats.count, all.count)

let model = Architecture.named("resnet18")!.build(1000)     // or mobilenet_v2, vgg16_bn, resnext50_32x4d, …
try model.load(sd)                                          // strict, torch's rules; throws a LoadReport
let net = Inference(model)                                  // BN folded, ReLU and residual fused
let x = try ImageNetEval().tensor(from: image)              // [3, 224, 224], torchvision-exact
let logits = try net.logits(x, batch: 1, height: 224, width: 224)
let top = logits.indices.max { logits[$0] < logits[$1] }!
print(top, ImageNet.labels[top])

model.replaceHead(classes: 2, seed: 0)                      // transfer learning: a new fc
let report = try model.load(sd, excluding: ["fc."])         // the backbone only, said in the report
print(report.loaded.count, "tensors loaded, fc left out")
