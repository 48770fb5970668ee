// swift run -c release FineTune resnet18-5c106cde.pth /usr/share/datasets/fashion-mnist ft.swt
import Checkpoint
import Training

let arguments = CommandLine.arguments
let weights = try Checkpoint(path: arguments[1]).stateDict()           // pretrained, in any format
let data = try DataSelection(path: arguments[2], perClass: 8).load(classes: 2, seed: 0)
var config = FineTuneConfig()                                         // SGD as torch, backbone frozen
config.epochs = 2
let run = try FineTuning(arch: "resnet18", classes: 2, weights: weights, config: config)
let train = TransformedImages(data.train, augment: false), test = TransformedImages(data.test, augment: false)
while run.completedEpochs < config.epochs {
    let epoch = try run.trainEpoch(train, test: test)
    print("epoch \(epoch.epoch): train loss \(epoch.loss), test accuracy \(epoch.eval!.accuracy)")
}
try OutputKind.write(run.modelStateDict(), to: arguments[3], converter: "FineTune example",
                     metadata: run.card(classNames: data.train.classNames).metadata)
