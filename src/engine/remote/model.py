"""A Triton Python-backend model written by `rsstyle serve-repo --backend python`.

It runs `model.onnx` beside this file with onnxruntime's CPU provider, for Triton builds that
have no ONNX Runtime backend (e.g. the one in PyPI's nvidia-pytriton). Triton's dynamic
batcher hands `execute` the requests it collected; requests of one shape run as one batch and
the result is split back into one response per request. `config.pbtxt` lists the inputs and
outputs; its parameter `intra_op_thread_count` sets onnxruntime's threads (0: one per core).
"""

import json
import os

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(parameters.get("intra_op_thread_count", "0") or 0)
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        self.batched = int(config.get("max_batch_size", 0)) > 0

    def execute(self, requests):
        feeds = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs}
            for r in requests
        ]
        responses = [None] * len(requests)
        # Requests whose inputs have the same shapes run together.
        groups = {}
        for index, feed in enumerate(feeds):
            key = tuple(feed[name].shape for name in self.inputs) if self.batched else (index,)
            groups.setdefault(key, []).append(index)
        for indices in groups.values():
            try:
                batch = {
                    name: np.concatenate([feeds[i][name] for i in indices])
                    for name in self.inputs
                }
                results = self.session.run(self.outputs, batch)
                bounds = np.cumsum([feeds[i][self.inputs[0]].shape[0] for i in indices])[:-1]
                parts = [np.split(result, bounds) for result in results]
                for k, i in enumerate(indices):
                    responses[i] = pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor(name, np.ascontiguousarray(parts[j][k]))
                            for j, name in enumerate(self.outputs)
                        ]
                    )
            except Exception as error:  # the batch fails, the server carries on
                for i in indices:
                    responses[i] = pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"{type(error).__name__}: {error}")
                    )
        return responses
